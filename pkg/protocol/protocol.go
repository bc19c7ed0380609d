// Package protocol holds livechat's wire protocol v1: the JSON frames a client
// and a server exchange over a WebSocket, the frames servers exchange over the
// broker, the subjects they use and the rules for rooms, names and texts.
// docs/PROTOCOL.md is the prose description of the same thing.
package protocol

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Version is the protocol version announced in the welcome frame.
const Version = 1

// Frame types, client to server.
const (
	TypeJoin   = "join"
	TypeSend   = "send"
	TypeTyping = "typing"
	TypeLeave  = "leave"
	// TypeHistory asks for older messages of a room (client to server) and
	// answers with them (server to client).
	TypeHistory = "history"
	// TypeAuth carries a connection token (Inbound.Token): as the first
	// frame of a connection whose handshake had no credentials, or later to
	// refresh the token of the same user before it expires.
	TypeAuth = "auth"
)

// Frame types, server to client. TypeTyping is used both ways.
const (
	TypeWelcome  = "welcome"
	TypeJoined   = "joined"
	TypeLeft     = "left"
	TypeMessage  = "message"
	TypeAck      = "ack"
	TypePresence = "presence"
	TypeError    = "error"
	// TypeHeartbeat is the frame {"type":"heartbeat"}, sent to a connection
	// that has been sent nothing for a while, so that no connection goes
	// more than Welcome.HeartbeatMillis without a frame: a client that hears
	// nothing for twice that knows its server or the path to it is dead.
	// It carries nothing and is not a message of any room.
	TypeHeartbeat = "heartbeat"
	// TypeAuthed answers an accepted auth frame (Authed).
	TypeAuthed = "authed"
)

// Error codes carried by error frames.
const (
	CodeBadRequest   = "bad_request"  // not a JSON object, or a field of the wrong type
	CodeUnknownType  = "unknown_type" // "type" missing or not one of the client frame types
	CodeInvalidRoom  = "invalid_room" // room name breaks RoomPattern
	CodeInvalidName  = "invalid_name" // display name breaks the name rules
	CodeInvalidText  = "invalid_text" // empty text, or text over MaxTextLen
	CodeInvalidCID   = "invalid_cid"  // cid over MaxCIDLen
	CodeNotJoined    = "not_joined"   // send/typing/leave for a room the connection is not in
	CodeTooManyRooms = "too_many_rooms"
	CodeRateLimited  = "rate_limited"
	CodeBinary       = "binary_unsupported" // a binary frame was sent
	CodeUnavailable  = "unavailable"        // the broker (or store) is down; retry the same cid
	CodeInternal     = "internal"
	// CodeNotFound answers a join (or any frame) for a room that does not
	// exist or that the connection's user may not enter: the same code and
	// message for both, so a stranger cannot learn that a room exists.
	CodeNotFound = "not_found"
	// CodeForbiddenName: the frame names someone other than the
	// connection's own identity (signed-in users and token users have
	// their name from the server; a guest keeps the name of its first join).
	CodeForbiddenName = "forbidden_name"
	// CodeNameTaken: a guest asked for a name that an account holds.
	CodeNameTaken = "name_taken"
	// CodeAuthRequired: a frame other than auth before the connection is
	// authenticated (guests not allowed and no credentials at the handshake).
	CodeAuthRequired = "auth_required"
	// CodeInvalidToken: an auth frame's token was refused (one code for
	// every reason: forged, expired, wrong key or algorithm, another user).
	CodeInvalidToken = "invalid_token"
	// CodeInvalidFiles: a send's files are refused: more than MaxFiles, an
	// id repeated, or an id that is not an upload of the sender into that
	// room (one code and message for missing, another user's and another
	// room's), or the server takes no files.
	CodeInvalidFiles = "invalid_files"
)

// Close codes (RFC 6455 leaves 4000-4999 to applications) a server ends a
// connection with for identity reasons; the web client explains each.
const (
	// CloseAuthFailed: no valid credentials within the auth timeout, or
	// an auth frame with a refused token on a connection without identity.
	CloseAuthFailed = 4001
	// CloseTokenExpired: the connection's token expired and no auth frame
	// refreshed it.
	CloseTokenExpired = 4002
	// CloseSignedOut: the session ended (signed out, or the password was
	// changed, possibly on another device); sign in again.
	CloseSignedOut = 4003
	// CloseAccountClosed: the account was banned or deleted.
	CloseAccountClosed = 4004
)

// Limits of the protocol.
const (
	MaxRoomLen = 64
	MaxNameLen = 32 // in characters (runes)
	MaxTextLen = 4000
	MaxCIDLen  = 64
	// MaxHistoryPage caps the messages of one history answer.
	MaxHistoryPage = 100
	// MaxFiles caps the files attached to one message.
	MaxFiles = 10
)

// Inbound is any client frame; fields not used by a type are ignored.
type Inbound struct {
	Type string `json:"type"`
	Room string `json:"room,omitempty"`
	Name string `json:"name,omitempty"`
	Text string `json:"text,omitempty"`
	CID  string `json:"cid,omitempty"`
	// Since is the last seq the client saw in Room (join). Absent: the
	// server sends the room's latest messages; present: the messages after
	// it (0 means from the start).
	Since *uint64 `json:"since,omitempty"`
	// Before asks a history request for messages with a lower seq; 0 or
	// absent means the latest ones.
	Before uint64 `json:"before,omitempty"`
	// Limit is how many messages a history request wants (capped by the
	// server, MaxHistoryPage).
	Limit int `json:"limit,omitempty"`
	// Token is an auth frame's connection token.
	Token string `json:"token,omitempty"`
	// Files are the upload ids a send attaches (POST /api/files made
	// them); the server fills in each File from its own record.
	Files []string `json:"files,omitempty"`
}

// Welcome is the first frame on every connection.
type Welcome struct {
	Type     string `json:"type"` // "welcome"
	Server   string `json:"server"`
	Version  string `json:"version"`
	Protocol int    `json:"protocol"`
	Limits   Limits `json:"limits"`
	// HeartbeatMillis is the longest the server lets the connection go
	// without a frame, in milliseconds: when nothing else is sent it sends
	// a heartbeat frame (TypeHeartbeat). Omitted when heartbeats are off.
	HeartbeatMillis int64 `json:"heartbeat_ms,omitempty"`
	// User is the connection's identity when the handshake established
	// one (a session cookie, a token, or a guest id); absent otherwise.
	User *User `json:"user,omitempty"`
	// AuthRequired says that the connection has no identity yet and must
	// send an auth frame within AuthTimeoutMillis, or be closed with
	// CloseAuthFailed.
	AuthRequired      bool  `json:"auth_required,omitempty"`
	AuthTimeoutMillis int64 `json:"auth_timeout_ms,omitempty"`
	// UploadToken, for a guest when the server lets guests send files, is
	// the bearer token of the guest's uploads (POST /api/files).
	UploadToken string `json:"upload_token,omitempty"`
}

// User is an identity as clients see it.
type User struct {
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"` // empty for a guest before its first join
	Guest bool   `json:"guest,omitempty"`
}

// Authed answers an accepted auth frame.
type Authed struct {
	Type string `json:"type"` // "authed"
	User User   `json:"user"`
	// ExpiresMS is when the token expires (Unix ms): the connection is
	// closed with CloseTokenExpired then unless another auth frame with a
	// fresh token of the same user arrives before.
	ExpiresMS int64 `json:"expires_ms"`
}

// Limits tells a client the bounds the server enforces.
type Limits struct {
	MaxText     int     `json:"max_text"`
	MaxFrame    int     `json:"max_frame"`
	MaxRooms    int     `json:"max_rooms"`
	RatePerSec  float64 `json:"rate_per_sec"`
	RateBurst   int     `json:"rate_burst"`
	MaxNameRune int     `json:"max_name"`
}

// Joined answers a join. With history, the room's messages follow it: the
// replay (the messages after the join's since, or the latest ones), ending
// at LastSeq, then live messages with higher seqs.
type Joined struct {
	Type string `json:"type"` // "joined"
	Room string `json:"room"`
	Name string `json:"name"`
	// Members is the room's sorted member list; in a room of more than
	// PresenceListMax members only its first PresenceListMax names, and
	// MembersTruncated is set.
	Members []string `json:"members"`
	// MemberCount is the number of members of the room (all of them, also
	// when Members is truncated).
	MemberCount int `json:"member_count"`
	// MembersTruncated says that Members holds only the first
	// PresenceListMax names of MemberCount.
	MembersTruncated bool `json:"members_truncated,omitempty"`
	// LastSeq is the room's last seq when the client was added: replayed
	// messages have seq <= LastSeq, live ones seq > LastSeq. Omitted
	// without history.
	LastSeq uint64 `json:"last_seq,omitempty"`
	// FirstSeq is the oldest seq the history still holds (0: none).
	FirstSeq uint64 `json:"first_seq,omitempty"`
	// ReplayFrom is the seq of the first replayed message (0: none).
	ReplayFrom uint64 `json:"replay_from,omitempty"`
	// Truncated says that messages after since are missing from the
	// replay: the seqs since+1 .. FirstSeq-1 are gone for good, and the
	// held ones below ReplayFrom (over the replay limit) can be fetched
	// with history requests.
	Truncated bool `json:"truncated,omitempty"`
	// Reset says that since is above the room's last seq: the history the
	// client knew was lost (the store forgot the room) and seqs restarted;
	// the client must forget its last seq and start from this replay.
	Reset bool `json:"reset,omitempty"`
}

// History answers a history request: up to the asked number of messages
// just below its before, ascending. More is true when older ones are held.
type History struct {
	Type     string    `json:"type"` // "history"
	Room     string    `json:"room"`
	Messages []Message `json:"messages"`
	More     bool      `json:"more"`
}

// Left answers a leave, or tells a connection that it was taken out of a
// room (Reason "removed": its user was removed from the private room).
type Left struct {
	Type   string `json:"type"` // "left"
	Room   string `json:"room"`
	Reason string `json:"reason,omitempty"`
}

// Message is a chat message or a system announcement. The accepting server
// encodes it once and publishes the encoded bytes on the room's subject;
// every server forwards those bytes to its members unchanged.
type Message struct {
	Type string `json:"type"` // "message"
	Room string `json:"room"`
	ID   string `json:"id"`
	Seq  uint64 `json:"seq,omitempty"` // the room's sequence number, with history
	From string `json:"from"`
	// User is the sender's user id (an account id, a token's subject or a
	// guest id); empty for announcements and older messages.
	User string `json:"user,omitempty"`
	// Guest marks a message sent by a guest.
	Guest  bool   `json:"guest,omitempty"`
	Text   string `json:"text"`
	TS     int64  `json:"ts"`     // server time, Unix milliseconds
	Server string `json:"server"` // APPID of the accepting server, or "cli"
	CID    string `json:"cid,omitempty"`
	System bool   `json:"system,omitempty"` // an operator announcement
	// Files are the message's attachments, described by the server.
	Files []File `json:"files,omitempty"`
}

// File describes a file attached to a message, as the server recorded it
// when it was uploaded (never as a client claims it). Its bytes are at
// /api/files/{id} and, for images, a thumbnail at /api/files/{id}/thumb,
// for the members of the message's room only.
type File struct {
	ID   string `json:"id"`   // the upload id
	Type string `json:"type"` // the MIME type the server decided from the content
	Size int64  `json:"size"` // bytes
	Name string `json:"name"` // the uploader's file name, for display only
	// Width and Height are an image's pixels (0 for other files), so that
	// a page reserves the space before the image arrives.
	Width  int `json:"width,omitempty"`
	Height int `json:"height,omitempty"`
}

// Ack acknowledges a send to its sender.
type Ack struct {
	Type string `json:"type"` // "ack"
	CID  string `json:"cid"`
	ID   string `json:"id"`
	Room string `json:"room"`
	TS   int64  `json:"ts"`
	Seq  uint64 `json:"seq,omitempty"`
	// Dup says that the send was taken for a retry: the history already
	// held a message of the same sender name and cid in the room, so
	// nothing was stored or delivered again, and ID, TS and Seq are the
	// original message's (only Seq when the original was trimmed). Only
	// with history; docs/PROTOCOL.md says how long each store remembers.
	Dup bool `json:"dup,omitempty"`
}

// Typing tells a room that someone is typing. It is also published on the
// room's subject.
type Typing struct {
	Type   string `json:"type"` // "typing"
	Room   string `json:"room"`
	Name   string `json:"name"`
	Server string `json:"server,omitempty"`
}

// Presence reports a change of a room's member list (the union over all
// servers). Members is the full list after the change while the room has at
// most PresenceListMax members; in a bigger room it is left out and the
// client applies Joined and Left to the list it has (from joined and the
// previous presence frames), so a change costs each member a few names, not
// the whole list. MemberCount is the room's number of members after the
// change, in every room. In a big room a change of more than
// PresenceDeltaMax names (a burst of joins or leaves) leaves Joined and Left
// out and sets NamesOmitted: every member learning every other's name
// during a burst of N joins is N² names. When some of them left, Members
// holds the first PresenceListMax names after the change (sorted) and
// MembersTruncated is set, so that the client replaces its list instead of
// keeping names of members who are gone.
type Presence struct {
	Type             string   `json:"type"` // "presence"
	Room             string   `json:"room"`
	Joined           []string `json:"joined,omitempty"`
	Left             []string `json:"left,omitempty"`
	Members          []string `json:"members,omitempty"`
	MembersTruncated bool     `json:"members_truncated,omitempty"`
	MemberCount      int      `json:"member_count"`
	NamesOmitted     bool     `json:"names_omitted,omitempty"`
}

// PresenceDeltaMax is the most names (joined plus left) a presence frame of
// a room above PresenceListMax members carries; a bigger change sends only
// the member count (Presence.NamesOmitted).
const PresenceDeltaMax = 20

// PresenceListMax is the largest room whose presence frames carry the full
// member list, and the most names a joined frame carries (the first ones,
// sorted; see Joined.MembersTruncated).
const PresenceListMax = 100

// Error reports a refused frame; the connection stays open.
type Error struct {
	Type    string `json:"type"` // "error"
	Code    string `json:"code"`
	Message string `json:"message"`
	CID     string `json:"cid,omitempty"`
	Room    string `json:"room,omitempty"`
}

// DefaultPrefix is the subject namespace of a deployment; every subject
// below starts with it.
const DefaultPrefix = "livechat"

// RoomSubject carries a room's message and typing frames.
func RoomSubject(prefix, room string) string { return prefix + ".room." + room }

// PresenceSubject carries a room's presence sync frames between servers.
func PresenceSubject(prefix, room string) string { return prefix + ".presence." + room }

// UserSubject carries the events of one user (UserEvent) to every server.
// A user id that is not a valid subject token (a token's subject may hold
// any characters) is replaced by "h" and 32 hex digits of its SHA-256.
func UserSubject(prefix, userID string) string {
	if ValidRoom(userID) != nil {
		sum := sha256.Sum256([]byte(userID))
		userID = "h" + hex.EncodeToString(sum[:16])
	}
	return prefix + ".user." + userID
}

// UserEvent types.
const (
	// TypeRevoke ends connections of User: all of them, or only those of
	// Session when it is set (a sign-out).
	TypeRevoke = "revoke"
	// TypeRemoved takes User's connections out of Room.
	TypeRemoved = "removed"
)

// UserEvent reasons; the close code follows from the reason.
const (
	ReasonSignedOut       = "signed_out"       // CloseSignedOut, Session set
	ReasonPasswordChanged = "password_changed" // CloseSignedOut
	ReasonBanned          = "banned"           // CloseAccountClosed
	ReasonDeleted         = "deleted"          // CloseAccountClosed
	ReasonRemoved         = "removed"          // TypeRemoved
)

// UserEvent is published on a user's subject by whoever changes the user's
// access (a sign-out, a password change, a ban, a deletion, a removal from
// a room); every server applies it to its connections of that user.
type UserEvent struct {
	Type    string `json:"type"`
	User    string `json:"user"`
	Session string `json:"session,omitempty"`
	Room    string `json:"room,omitempty"`
	Reason  string `json:"reason"`
}

// Rooms whose name starts with ReservedRoomPrefix are made by the server
// (private rooms and direct chats, ids of PrivateRoomPrefix or
// DirectRoomPrefix and random characters); every other valid room name is a
// public room.
const (
	ReservedRoomPrefix = "_"
	PrivateRoomPrefix  = "_p"
	DirectRoomPrefix   = "_d"
)

// PublicRoom reports whether room names a public room (not a server-made id).
func PublicRoom(room string) bool { return !strings.HasPrefix(room, ReservedRoomPrefix) }

// StatsSubject carries a server's heartbeat.
func StatsSubject(prefix, appID string) string { return prefix + ".stats." + appID }

// PresenceSync is exchanged between servers on a room's presence subject.
// Op "snapshot" replaces Server's member list for the room and is valid for
// TTLMillis; op "sync" asks every server to send its snapshot now; op "bye"
// removes Server's list (its last member left the room).
type PresenceSync struct {
	Op        string   `json:"op"`
	Server    string   `json:"server"`
	Room      string   `json:"room"`
	Members   []string `json:"members,omitempty"`
	TTLMillis int64    `json:"ttl_ms,omitempty"`
	// First marks a server's first snapshot since it entered the room
	// (subscribed): its names arrived after that, so a server hearing of
	// it for the first time announces them as joined. A first-heard
	// snapshot without it lists members that were already there. Added
	// after v1; older servers never set it.
	First bool `json:"first,omitempty"`
}

// Heartbeat is what a server publishes on its stats subject every few
// seconds; `livechat stats` collects them.
type Heartbeat struct {
	AppID       string  `json:"app_id"`
	Addr        string  `json:"addr"`
	Version     string  `json:"version"`
	StartedMS   int64   `json:"started_ms"`
	TS          int64   `json:"ts"` // Unix milliseconds when sent
	IntervalMS  int64   `json:"interval_ms"`
	Connections int64   `json:"connections"`
	Rooms       int64   `json:"rooms"`
	MsgsIn      uint64  `json:"msgs_in"`  // total client messages accepted
	MsgsOut     uint64  `json:"msgs_out"` // total frames delivered to clients
	InPerSec    float64 `json:"in_per_sec"`
	OutPerSec   float64 `json:"out_per_sec"`
	SlowDrops   uint64  `json:"slow_drops"` // clients disconnected as too slow
	Broker      string  `json:"broker"`     // broker state
	Draining    bool    `json:"draining"`
	// Peers maps the APPID of every other server this one heard a heartbeat
	// from recently to when it last did (Unix ms), so `livechat stats` can
	// show a server that died as stale.
	Peers map[string]int64 `json:"peers,omitempty"`
	// PeerInfo holds the address and version of the servers in Peers, from
	// their last heartbeat, so `livechat stats` can name a server that died
	// before it started listening. Added after v1: may be absent.
	PeerInfo map[string]PeerInfo `json:"peer_info,omitempty"`
}

// PeerInfo is what a heartbeat says of another server besides when it was
// last heard.
type PeerInfo struct {
	Addr    string `json:"addr"`
	Version string `json:"version"`
}

// Validation errors.
var (
	ErrInvalidRoom = errors.New("room must be 1-64 characters of letters, digits, '-' and '_'")
	ErrInvalidName = errors.New("name must be 1-32 characters: letters, digits, spaces and - _ . ' (no leading or trailing space)")
	ErrEmptyText   = errors.New("text is empty")
	ErrLongText    = errors.New("text is longer than 4000 bytes")
	ErrNULText     = errors.New("text contains a NUL character")
)

// ValidRoom checks a room name: 1..MaxRoomLen of [A-Za-z0-9_-]. Room names
// are case-sensitive and become one subject token.
func ValidRoom(room string) error {
	if room == "" || len(room) > MaxRoomLen {
		return ErrInvalidRoom
	}
	for i := 0; i < len(room); i++ {
		c := room[i]
		if !roomByte(c) {
			return ErrInvalidRoom
		}
	}
	return nil
}

func roomByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

func nameRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || r == ' ' || r == '-' || r == '_' || r == '.' || r == '\''
}

// ValidName checks a display name: 1..MaxNameLen runes of letters, digits,
// spaces and - _ . ', with no leading or trailing space.
func ValidName(name string) error {
	if name == "" || !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxNameLen || strings.TrimSpace(name) != name {
		return ErrInvalidName
	}
	for _, r := range name {
		if !nameRune(r) {
			return ErrInvalidName
		}
	}
	return nil
}

// ErrInvalidCID is returned by ValidCID.
var ErrInvalidCID = errors.New("cid must be at most 64 bytes of printable characters")

// ValidCID checks a client message id: empty (no retry de-duplication), or
// at most MaxCIDLen bytes of valid UTF-8 without control characters.
func ValidCID(cid string) error {
	if len(cid) > MaxCIDLen || !utf8.ValidString(cid) {
		return ErrInvalidCID
	}
	for _, r := range cid {
		if unicode.IsControl(r) {
			return ErrInvalidCID
		}
	}
	return nil
}

// ValidText checks a message text: not empty or only white space, at most
// MaxTextLen bytes, no NUL character.
func ValidText(text string) error {
	if strings.TrimSpace(text) == "" {
		return ErrEmptyText
	}
	if len(text) > MaxTextLen {
		return ErrLongText
	}
	if strings.IndexByte(text, 0) >= 0 {
		return ErrNULText // no store can keep it (PostgreSQL refuses NUL)
	}
	return nil
}

// Errors of ValidFiles.
var (
	ErrTooManyFiles  = errors.New("a message has at most 10 files")
	ErrInvalidFileID = errors.New("a file id must be 1-128 characters of letters, digits, '-' and '_'")
	ErrRepeatedFile  = errors.New("a file is attached twice")
)

// MaxFileIDLen bounds an upload id in a send's files.
const MaxFileIDLen = 128

// ValidFiles checks a send's upload ids: at most MaxFiles, each 1..MaxFileIDLen
// bytes of [A-Za-z0-9_-], none repeated. It does not allocate.
func ValidFiles(ids []string) error {
	if len(ids) > MaxFiles {
		return ErrTooManyFiles
	}
	for i, id := range ids {
		if id == "" || len(id) > MaxFileIDLen {
			return ErrInvalidFileID
		}
		for j := 0; j < len(id); j++ {
			if !roomByte(id[j]) {
				return ErrInvalidFileID
			}
		}
		for _, prev := range ids[:i] {
			if prev == id {
				return ErrRepeatedFile
			}
		}
	}
	return nil
}

// ValidSendText checks the text of a send that attaches nfiles files:
// without files ValidText; with files the text may be empty or blank, but
// is still at most MaxTextLen bytes without a NUL character.
func ValidSendText(text string, nfiles int) error {
	if nfiles == 0 {
		return ValidText(text)
	}
	if len(text) > MaxTextLen {
		return ErrLongText
	}
	if strings.IndexByte(text, 0) >= 0 {
		return ErrNULText
	}
	return nil
}
