package protocol

import (
	"errors"
	"strings"
	"testing"
)

func TestValidRoom(t *testing.T) {
	for _, tc := range []struct {
		room string
		ok   bool
	}{
		{"general", true},
		{"Room_1-b", true},
		{strings.Repeat("r", MaxRoomLen), true},
		{"", false},
		{strings.Repeat("r", MaxRoomLen+1), false},
		{"a.b", false}, // would be two subject tokens
		{"a*", false},
		{">", false},
		{"with space", false},
		{"café", false},
		{"a/b", false},
	} {
		if err := ValidRoom(tc.room); (err == nil) != tc.ok {
			t.Errorf("ValidRoom(%q) = %v, want ok=%v", tc.room, err, tc.ok)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"alice", true},
		{"Zoë O'Neil", true},
		{"bob_2-x.y", true},
		{strings.Repeat("é", MaxNameLen), true},
		{"", false},
		{strings.Repeat("é", MaxNameLen+1), false},
		{" alice", false},
		{"alice ", false},
		{"al<ice>", false},
		{"a\tb", false},
		{"a\x00b", false},
		{"\xff", false},
	} {
		if err := ValidName(tc.name); (err == nil) != tc.ok {
			t.Errorf("ValidName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestValidText(t *testing.T) {
	for _, tc := range []struct {
		text string
		ok   bool
	}{
		{"hi", true},
		{"<img src=x onerror=alert(1)>", true},
		{strings.Repeat("x", MaxTextLen), true},
		{"line\nbreak", true},
		{"", false},
		{" \n\t", false},
		{strings.Repeat("x", MaxTextLen+1), false},
	} {
		if err := ValidText(tc.text); (err == nil) != tc.ok {
			t.Errorf("ValidText(%.20q) = %v, want ok=%v", tc.text, err, tc.ok)
		}
	}
}

func TestSubjects(t *testing.T) {
	if got := RoomSubject("lc", "general"); got != "lc.room.general" {
		t.Errorf("RoomSubject = %q", got)
	}
	if got := PresenceSubject("lc", "general"); got != "lc.presence.general" {
		t.Errorf("PresenceSubject = %q", got)
	}
	if got := StatsSubject("lc", "1000"); got != "lc.stats.1000" {
		t.Errorf("StatsSubject = %q", got)
	}
}

func TestValidFiles(t *testing.T) {
	many := make([]string, MaxFiles+1)
	for i := range many {
		many[i] = "f" + strings.Repeat("x", i)
	}
	for _, tc := range []struct {
		ids  []string
		want error
	}{
		{nil, nil},
		{[]string{"a"}, nil},
		{[]string{"Ab_9-z", strings.Repeat("f", MaxFileIDLen)}, nil},
		{many[:MaxFiles], nil},
		{many, ErrTooManyFiles},
		{[]string{""}, ErrInvalidFileID},
		{[]string{strings.Repeat("f", MaxFileIDLen+1)}, ErrInvalidFileID},
		{[]string{"a.b"}, ErrInvalidFileID},
		{[]string{"a/../b"}, ErrInvalidFileID},
		{[]string{"café"}, ErrInvalidFileID},
		{[]string{"a b"}, ErrInvalidFileID},
		{[]string{"a", "b", "a"}, ErrRepeatedFile},
	} {
		if err := ValidFiles(tc.ids); !errors.Is(err, tc.want) {
			t.Errorf("ValidFiles(%q) = %v, want %v", tc.ids, err, tc.want)
		}
	}
	ids := []string{"a", "b", "c"}
	if n := testing.AllocsPerRun(10, func() { _ = ValidFiles(ids) }); n != 0 {
		t.Errorf("ValidFiles: %v allocations", n)
	}
}

func TestValidSendText(t *testing.T) {
	for _, tc := range []struct {
		text   string
		nfiles int
		want   error
	}{
		{"hi", 0, nil},
		{"", 0, ErrEmptyText},
		{" \n", 0, ErrEmptyText},
		{"", 1, nil},
		{" \n", 2, nil},
		{"caption", 1, nil},
		{strings.Repeat("x", MaxTextLen+1), 1, ErrLongText},
		{"a\x00b", 1, ErrNULText},
		{"a\x00b", 0, ErrNULText},
	} {
		if err := ValidSendText(tc.text, tc.nfiles); !errors.Is(err, tc.want) {
			t.Errorf("ValidSendText(%.20q, %d) = %v, want %v", tc.text, tc.nfiles, err, tc.want)
		}
	}
}
