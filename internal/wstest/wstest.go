// Package wstest is the WebSocket client of the chat's tests: gorilla's,
// an implementation independent of the engine's framing, so that a framing
// bug on one side is not cancelled out by the same bug on the other. The
// chat's tests name this package, never the socket library, which only the
// engine (internal/engine) and this package import.
package wstest

import "github.com/gorilla/websocket"

// Conn is a client connection (gorilla's websocket.Conn).
type Conn = websocket.Conn

// Dialer opens client connections (gorilla's websocket.Dialer).
type Dialer = websocket.Dialer

// CloseError is the error a read returns once the server closed the
// connection with a close frame; Code is its close code.
type CloseError = websocket.CloseError

// The message types of Conn.ReadMessage and Conn.WriteMessage.
const (
	TextMessage   = websocket.TextMessage
	BinaryMessage = websocket.BinaryMessage
)
