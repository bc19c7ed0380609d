package history

import (
	"encoding/json"
	"fmt"

	"github.com/livechat/livechat/pkg/protocol"
)

// filesJSON is the value of a message's nullable files column in the SQL
// stores: nil (NULL) without files, else the JSON of Message.Files.
func filesJSON(files []protocol.File) *string {
	if len(files) == 0 {
		return nil
	}
	b, _ := json.Marshal(files) // strings and numbers: it cannot fail
	s := string(b)
	return &s
}

// scanFiles decodes a files column read into col into m.Files (nil for
// NULL).
func scanFiles(col *string, m *protocol.Message) error {
	if col == nil || *col == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(*col), &m.Files); err != nil {
		return fmt.Errorf("history: malformed files of %s seq %d: %w", m.Room, m.Seq, err)
	}
	return nil
}
