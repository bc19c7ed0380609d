package loadgen

import (
	"bufio"
	"net"
	"net/http"
	"testing"
)

// TestHeaderConn: gorilla's reader gets the handshake's response and not a
// byte more, whether the header's end comes in one read or split across
// reads; what followed it is kept for the frame reader.
func TestHeaderConn(t *testing.T) {
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
	frames := "\x81\x05hello\x81\x02hi"
	for _, pieces := range [][]string{
		{resp + frames},
		{resp[:len(resp)-1], resp[len(resp)-1:] + frames},
		{resp[:len(resp)-3], resp[len(resp)-3:], frames},
		{resp},
	} {
		client, server := net.Pipe()
		go func() {
			for _, p := range pieces {
				if _, err := server.Write([]byte(p)); err != nil {
					return
				}
			}
		}()
		h := &headerConn{Conn: client}
		br := bufio.NewReader(h)
		r, err := http.ReadResponse(br, nil)
		if err != nil || r.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("%q: response %v, %v", pieces, r, err)
		}
		_ = r.Body.Close()
		if br.Buffered() != 0 {
			t.Fatalf("%q: gorilla's reader holds %d bytes past the header", pieces, br.Buffered())
		}
		got := string(h.rest)
		if len(pieces) == 3 || len(pieces) == 1 && pieces[0] == resp {
			if got != "" {
				t.Fatalf("%q: rest %q, want none", pieces, got)
			}
		} else if got != frames {
			t.Fatalf("%q: rest %q, want %q", pieces, got, frames)
		}
		_ = client.Close()
		_ = server.Close()
	}
}
