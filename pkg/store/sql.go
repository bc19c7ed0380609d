package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// sqlStore is the Store over database/sql shared by SQLite and PostgreSQL:
// the schema and the statements are the same (times as bigint Unix
// microseconds, so both backends keep the same precision); the dialect
// gives placeholders and the error codes.
type sqlStore struct {
	w, r   *sql.DB // writes and reads; the same pool on PostgreSQL
	d      dialect
	closed atomic.Bool
	once   sync.Once
	cerr   error
	// stmts holds the prepared statements of the hottest reads (userBy,
	// once per guest's first join), by query: parsed once, not per call.
	stmts sync.Map
}

// dialect is what differs between the SQL backends.
type dialect struct {
	name string
	// dollar: placeholders are $1, $2 instead of ?.
	dollar bool
	// collate is the binary collation: COLLATE BINARY or COLLATE "C".
	collate string
	// forUpdate locks the rows a SELECT reads until the transaction ends:
	// " FOR UPDATE" on PostgreSQL; empty on SQLite, whose one writer
	// connection already serialises write transactions.
	forUpdate string
	// classify maps a driver error to ErrExists (unique violation),
	// ErrNotFound (foreign key violation) or nil (anything else).
	classify func(error) error
}

// schema is applied in order, with {C} replaced by the dialect's binary
// collation so that ids and keys sort and compare byte by byte, as in Go; entry i brings the schema to version i+1.
// Later changes are appended, never edited. Each entry is one statement
// per element, since not every driver runs several in one Exec.
var schema = [][]string{{
	`CREATE TABLE store_users (
		id            text {C} PRIMARY KEY,
		name          text NOT NULL,
		ukey          text {C} NOT NULL UNIQUE,
		password_hash text NOT NULL,
		created       bigint NOT NULL,
		banned        boolean NOT NULL
	)`,
	`CREATE TABLE store_sessions (
		id      text PRIMARY KEY,
		user_id text NOT NULL REFERENCES store_users (id) ON DELETE CASCADE,
		created bigint NOT NULL,
		expires bigint NOT NULL
	)`,
	`CREATE INDEX store_sessions_user ON store_sessions (user_id)`,
	`CREATE INDEX store_sessions_expires ON store_sessions (expires)`,
	// dm_lo, dm_hi: the ordered pair of a direct room's users, NULL for
	// other kinds (NULLs never collide in a UNIQUE constraint).
	`CREATE TABLE store_rooms (
		id          text {C} PRIMARY KEY,
		name        text NOT NULL,
		kind        text NOT NULL,
		owner       text NOT NULL,
		created     bigint NOT NULL,
		last_active bigint NOT NULL,
		dm_lo       text,
		dm_hi       text,
		UNIQUE (dm_lo, dm_hi)
	)`,
	`CREATE INDEX store_rooms_kind ON store_rooms (kind, id)`,
	`CREATE TABLE store_members (
		room_id text {C} NOT NULL REFERENCES store_rooms (id) ON DELETE CASCADE,
		user_id text {C} NOT NULL REFERENCES store_users (id) ON DELETE CASCADE,
		role    text NOT NULL,
		PRIMARY KEY (room_id, user_id)
	)`,
	`CREATE INDEX store_members_user ON store_members (user_id)`,
}, {
	// Version 2: uploads. No foreign keys: token users have no user row,
	// and deleting a user or room leaves its uploads (their blobs are the
	// caller's). message is '' while the upload is attached to none.
	`CREATE TABLE store_uploads (
		id      text {C} PRIMARY KEY,
		user_id text {C} NOT NULL,
		room    text {C} NOT NULL,
		type    text NOT NULL,
		name    text NOT NULL,
		size    bigint NOT NULL,
		width   bigint NOT NULL,
		height  bigint NOT NULL,
		thumb   boolean NOT NULL,
		sha256  text NOT NULL,
		created bigint NOT NULL,
		message text {C} NOT NULL DEFAULT ''
	)`,
	`CREATE INDEX store_uploads_user ON store_uploads (user_id)`,
	// Both SQLite and PostgreSQL have partial indexes.
	`CREATE INDEX store_uploads_stale ON store_uploads (created, id) WHERE message = ''`,
	`CREATE INDEX store_uploads_message ON store_uploads (room, message)`,
}}

// q rewrites the ? placeholders of query for the dialect.
func (s *sqlStore) q(query string) string {
	if !s.d.dollar {
		return query
	}
	var b strings.Builder
	n := 0
	for _, c := range query {
		if c == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

// migrate brings the schema to the latest version in one transaction;
// lock, when set, is run first to serialise servers starting together.
func (s *sqlStore) migrate(ctx context.Context, lock string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		if lock != "" {
			if _, err := tx.ExecContext(ctx, lock); err != nil {
				return fmt.Errorf("migrate: lock: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS store_schema_version (version integer PRIMARY KEY)`); err != nil {
			return fmt.Errorf("migrate: %w", err)
		}
		var v int
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM store_schema_version`).Scan(&v); err != nil {
			return fmt.Errorf("migrate: read version: %w", err)
		}
		for i := v; i < len(schema); i++ {
			for _, stmt := range schema[i] {
				if _, err := tx.ExecContext(ctx, strings.ReplaceAll(stmt, "{C}", s.d.collate)); err != nil {
					return fmt.Errorf("migrate to version %d: %w", i+1, err)
				}
			}
			if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO store_schema_version (version) VALUES (?)`), i+1); err != nil {
				return fmt.Errorf("migrate to version %d: %w", i+1, err)
			}
		}
		return nil
	})
}

// wrap gives err the store's prefix and sentinel: ErrClosed after Close,
// ErrExists or ErrNotFound for constraint violations.
func (s *sqlStore) wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	if s.closed.Load() {
		return ErrClosed
	}
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrExists) || errors.Is(err, ErrInvalid) {
		return err
	}
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: %s", ErrNotFound, what)
	}
	if c := s.d.classify(err); c != nil {
		return fmt.Errorf("%w: %s: %w", c, what, err)
	}
	return fmt.Errorf("store: %s %s: %w", s.d.name, what, err)
}

func (s *sqlStore) open() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

// tx runs f in a write transaction, committed when f returns nil.
func (s *sqlStore) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	return tx.Commit()
}

// exec runs one write and reports ErrNotFound when it changed no row.
func (s *sqlStore) exec(ctx context.Context, what, query string, args ...any) error {
	if err := s.open(); err != nil {
		return err
	}
	res, err := s.w.ExecContext(ctx, s.q(query), args...)
	if err != nil {
		return s.wrap(what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return s.wrap(what, err)
	}
	if n == 0 {
		return fmt.Errorf("%w: %s", ErrNotFound, what)
	}
	return nil
}

func us(t time.Time) int64     { return t.UnixMicro() }
func fromUs(v int64) time.Time { return time.UnixMicro(v).UTC() }
func (s *sqlStore) Close() error {
	s.once.Do(func() {
		s.closed.Store(true)
		s.stmts.Range(func(_, st any) bool {
			_ = st.(*sql.Stmt).Close()
			return true
		})
		s.cerr = s.w.Close()
		if s.r != s.w {
			s.cerr = errors.Join(s.cerr, s.r.Close())
		}
		if s.cerr != nil {
			s.cerr = fmt.Errorf("store: close: %w", s.cerr)
		}
	})
	return s.cerr
}

// prepared returns the read pool's prepared statement of query, made on
// its first use. Safe for concurrent use.
func (s *sqlStore) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := s.stmts.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.r.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if prev, loaded := s.stmts.LoadOrStore(query, st); loaded {
		_ = st.Close()
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

const userCols = `id, name, ukey, password_hash, created, banned`

type scanner interface{ Scan(...any) error }

func scanUser(sc scanner) (User, error) {
	var u User
	var created int64
	err := sc.Scan(&u.ID, &u.Name, &u.Key, &u.PasswordHash, &created, &u.Banned)
	u.Created = fromUs(created)
	return u, err
}

const roomCols = `id, name, kind, owner, created, last_active`

func scanRoom(sc scanner, extra ...any) (Room, error) {
	var r Room
	var created, active int64
	var kind string
	err := sc.Scan(append([]any{&r.ID, &r.Name, &kind, &r.Owner, &created, &active}, extra...)...)
	r.Kind, r.Created, r.LastActive = Kind(kind), fromUs(created), fromUs(active)
	return r, err
}

func (s *sqlStore) CreateUser(ctx context.Context, u User) (User, error) {
	if err := checkUser(u); err != nil {
		return User{}, err
	}
	u.Created = micro(u.Created)
	if err := s.open(); err != nil {
		return User{}, err
	}
	_, err := s.w.ExecContext(ctx, s.q(`INSERT INTO store_users (`+userCols+`) VALUES (?, ?, ?, ?, ?, ?)`),
		u.ID, u.Name, u.Key, u.PasswordHash, us(u.Created), u.Banned)
	if err != nil {
		return User{}, s.wrap("create user", err)
	}
	return u, nil
}

func (s *sqlStore) userBy(ctx context.Context, col, v string) (User, error) {
	if err := s.open(); err != nil {
		return User{}, err
	}
	st, err := s.prepared(ctx, s.q(`SELECT `+userCols+` FROM store_users WHERE `+col+` = ?`))
	if err != nil {
		return User{}, s.wrap("user", err)
	}
	u, err := scanUser(st.QueryRowContext(ctx, v))
	if err != nil {
		return User{}, s.wrap("user", err)
	}
	return u, nil
}

func (s *sqlStore) UserByID(ctx context.Context, id string) (User, error) {
	if err := checkID("user id", id); err != nil {
		return User{}, err
	}
	return s.userBy(ctx, "id", id)
}

func (s *sqlStore) UserByKey(ctx context.Context, key string) (User, error) {
	if err := check("user key", key, MaxKeyLen, true); err != nil {
		return User{}, err
	}
	return s.userBy(ctx, "ukey", key)
}

func (s *sqlStore) ListUsers(ctx context.Context, after string, limit int) ([]User, error) {
	if err := check("after", after, MaxKeyLen, false); err != nil {
		return nil, err
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT `+userCols+` FROM store_users WHERE ukey > ? ORDER BY ukey LIMIT ?`),
		after, pageLimit(limit))
	if err != nil {
		return nil, s.wrap("list users", err)
	}
	defer func() { _ = rows.Close() }()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, s.wrap("list users", err)
		}
		out = append(out, u)
	}
	return out, s.wrap("list users", rows.Err())
}

func (s *sqlStore) SetPassword(ctx context.Context, userID, hash string) error {
	if err := errorsJoin(checkID("user id", userID), check("password hash", hash, MaxHashLen, false)); err != nil {
		return err
	}
	return s.exec(ctx, "user", `UPDATE store_users SET password_hash = ? WHERE id = ?`, hash, userID)
}

func (s *sqlStore) SetBanned(ctx context.Context, userID string, banned bool) error {
	if err := checkID("user id", userID); err != nil {
		return err
	}
	return s.exec(ctx, "user", `UPDATE store_users SET banned = ? WHERE id = ?`, banned, userID)
}

// DeleteUser relies on ON DELETE CASCADE for sessions and memberships.
func (s *sqlStore) DeleteUser(ctx context.Context, userID string) error {
	if err := checkID("user id", userID); err != nil {
		return err
	}
	return s.exec(ctx, "user", `DELETE FROM store_users WHERE id = ?`, userID)
}

func (s *sqlStore) CreateSession(ctx context.Context, ss Session) (Session, error) {
	if err := errorsJoin(checkID("session id", ss.ID), checkID("user id", ss.UserID)); err != nil {
		return Session{}, err
	}
	ss.Created = micro(ss.Created)
	ss.Expires = ss.Expires.UTC().Truncate(time.Microsecond)
	if err := s.open(); err != nil {
		return Session{}, err
	}
	_, err := s.w.ExecContext(ctx, s.q(`INSERT INTO store_sessions (id, user_id, created, expires) VALUES (?, ?, ?, ?)`),
		ss.ID, ss.UserID, us(ss.Created), us(ss.Expires))
	if err != nil {
		return Session{}, s.wrap("create session", err)
	}
	return ss, nil
}

func (s *sqlStore) Session(ctx context.Context, id string) (Session, error) {
	if err := checkID("session id", id); err != nil {
		return Session{}, err
	}
	if err := s.open(); err != nil {
		return Session{}, err
	}
	var ss Session
	var created, expires int64
	err := s.r.QueryRowContext(ctx, s.q(`SELECT id, user_id, created, expires FROM store_sessions WHERE id = ? AND expires > ?`),
		id, us(time.Now())).Scan(&ss.ID, &ss.UserID, &created, &expires)
	if err != nil {
		return Session{}, s.wrap("session", err)
	}
	ss.Created, ss.Expires = fromUs(created), fromUs(expires)
	return ss, nil
}

func (s *sqlStore) DeleteSession(ctx context.Context, id string) error {
	if err := checkID("session id", id); err != nil {
		return err
	}
	return s.exec(ctx, "session", `DELETE FROM store_sessions WHERE id = ?`, id)
}

func (s *sqlStore) deleteSessions(ctx context.Context, query string, arg any) (int, error) {
	if err := s.open(); err != nil {
		return 0, err
	}
	res, err := s.w.ExecContext(ctx, s.q(query), arg)
	if err != nil {
		return 0, s.wrap("delete sessions", err)
	}
	n, err := res.RowsAffected()
	return int(n), s.wrap("delete sessions", err)
}

func (s *sqlStore) DeleteUserSessions(ctx context.Context, userID string) (int, error) {
	if err := checkID("user id", userID); err != nil {
		return 0, err
	}
	return s.deleteSessions(ctx, `DELETE FROM store_sessions WHERE user_id = ?`, userID)
}

func (s *sqlStore) DeleteExpiredSessions(ctx context.Context, now time.Time) (int, error) {
	return s.deleteSessions(ctx, `DELETE FROM store_sessions WHERE expires <= ?`, us(now))
}

func (s *sqlStore) CreateRoom(ctx context.Context, r Room) (Room, error) {
	if err := checkRoom(r); err != nil {
		return Room{}, err
	}
	r.Created = micro(r.Created)
	r.LastActive = r.Created
	if err := s.open(); err != nil {
		return Room{}, err
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO store_rooms (`+roomCols+`) VALUES (?, ?, ?, ?, ?, ?)`),
			r.ID, r.Name, string(r.Kind), r.Owner, us(r.Created), us(r.LastActive)); err != nil {
			return err
		}
		if r.Owner == "" {
			return nil
		}
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO store_members (room_id, user_id, role) VALUES (?, ?, ?)`),
			r.ID, r.Owner, string(RoleOwner))
		return err
	})
	if err != nil {
		return Room{}, s.wrap("create room", err)
	}
	return r, nil
}

func (s *sqlStore) Room(ctx context.Context, id string) (Room, error) {
	if err := checkID("room id", id); err != nil {
		return Room{}, err
	}
	if err := s.open(); err != nil {
		return Room{}, err
	}
	r, err := scanRoom(s.r.QueryRowContext(ctx, s.q(`SELECT `+roomCols+` FROM store_rooms WHERE id = ?`), id))
	if err != nil {
		return Room{}, s.wrap("room", err)
	}
	return r, nil
}

func (s *sqlStore) PublicRooms(ctx context.Context, after string, limit int) ([]Room, error) {
	if err := check("after", after, MaxIDLen, false); err != nil {
		return nil, err
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT `+roomCols+` FROM store_rooms WHERE kind = ? AND id > ? ORDER BY id LIMIT ?`),
		string(KindPublic), after, pageLimit(limit))
	if err != nil {
		return nil, s.wrap("public rooms", err)
	}
	defer func() { _ = rows.Close() }()
	var out []Room
	for rows.Next() {
		r, err := scanRoom(rows)
		if err != nil {
			return nil, s.wrap("public rooms", err)
		}
		out = append(out, r)
	}
	return out, s.wrap("public rooms", rows.Err())
}

// DirectRoom inserts the room with ON CONFLICT DO NOTHING on the pair: a
// concurrent insert of the same pair waits for the first to commit, then
// inserts nothing, and the SELECT that follows sees the winner.
func (s *sqlStore) DirectRoom(ctx context.Context, a, b, newID string) (Room, bool, error) {
	if err := checkDirect(a, b, newID); err != nil {
		return Room{}, false, err
	}
	lo, hi := pair(a, b)
	if err := s.open(); err != nil {
		return Room{}, false, err
	}
	now := us(micro(time.Time{}))
	var r Room
	var created bool
	err := s.tx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`INSERT INTO store_rooms (`+roomCols+`, dm_lo, dm_hi) VALUES (?, '', ?, '', ?, ?, ?, ?)
			ON CONFLICT (dm_lo, dm_hi) DO NOTHING`), newID, string(KindDirect), now, now, lo, hi)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if created = n == 1; created {
			for _, u := range []string{lo, hi} {
				if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO store_members (room_id, user_id, role) VALUES (?, ?, ?)`),
					newID, u, string(RoleMember)); err != nil {
					return err
				}
			}
		}
		r, err = scanRoom(tx.QueryRowContext(ctx, s.q(`SELECT `+roomCols+` FROM store_rooms WHERE dm_lo = ? AND dm_hi = ?`), lo, hi))
		return err
	})
	if err != nil {
		return Room{}, false, s.wrap("direct room", err)
	}
	return r, created, nil
}

func (s *sqlStore) Touch(ctx context.Context, roomID string, t time.Time) error {
	if err := checkID("room id", roomID); err != nil {
		return err
	}
	v := us(t)
	return s.exec(ctx, "room", `UPDATE store_rooms SET last_active = CASE WHEN last_active < ? THEN ? ELSE last_active END WHERE id = ?`,
		v, v, roomID)
}

func (s *sqlStore) TouchRooms(ctx context.Context, rooms map[string]time.Time) error {
	for id := range rooms {
		if err := checkID("room id", id); err != nil {
			return err
		}
	}
	if len(rooms) == 0 {
		return nil
	}
	if err := s.open(); err != nil {
		return err
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, s.q(`UPDATE store_rooms SET last_active = CASE WHEN last_active < ? THEN ? ELSE last_active END WHERE id = ?`))
		if err != nil {
			return err
		}
		defer func() { _ = stmt.Close() }()
		for id, t := range rooms {
			v := us(t)
			if _, err := stmt.ExecContext(ctx, v, v, id); err != nil {
				return err
			}
		}
		return nil
	})
	return s.wrap("room", err)
}

func (s *sqlStore) AddMember(ctx context.Context, roomID, userID string, role Role) error {
	if err := errorsJoin(checkID("room id", roomID), checkID("user id", userID), checkRole(role)); err != nil {
		return err
	}
	if err := s.open(); err != nil {
		return err
	}
	err := s.tx(ctx, func(tx *sql.Tx) error {
		var kind string
		if err := tx.QueryRowContext(ctx, s.q(`SELECT kind FROM store_rooms WHERE id = ?`), roomID).Scan(&kind); err != nil {
			return err
		}
		if Kind(kind) == KindDirect {
			return fmt.Errorf("%w: the members of direct room %q are fixed", ErrInvalid, roomID)
		}
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO store_members (room_id, user_id, role) VALUES (?, ?, ?)
			ON CONFLICT (room_id, user_id) DO UPDATE SET role = excluded.role`), roomID, userID, string(role))
		return err
	})
	return s.wrap("add member", err)
}

func (s *sqlStore) RemoveMember(ctx context.Context, roomID, userID string) error {
	if err := errorsJoin(checkID("room id", roomID), checkID("user id", userID)); err != nil {
		return err
	}
	return s.exec(ctx, "membership", `DELETE FROM store_members WHERE room_id = ? AND user_id = ?`, roomID, userID)
}

func (s *sqlStore) Member(ctx context.Context, roomID, userID string) (Role, error) {
	if err := errorsJoin(checkID("room id", roomID), checkID("user id", userID)); err != nil {
		return "", err
	}
	if err := s.open(); err != nil {
		return "", err
	}
	var role string
	err := s.r.QueryRowContext(ctx, s.q(`SELECT role FROM store_members WHERE room_id = ? AND user_id = ?`), roomID, userID).Scan(&role)
	if err != nil {
		return "", s.wrap("membership", err)
	}
	return Role(role), nil
}

func (s *sqlStore) Members(ctx context.Context, roomID string) ([]Member, error) {
	if err := checkID("room id", roomID); err != nil {
		return nil, err
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	var out []Member
	err := func() error {
		// One statement, so the room's existence and its members are one snapshot.
		rows, err := s.r.QueryContext(ctx, s.q(`SELECT m.user_id, m.role FROM store_rooms r
			LEFT JOIN store_members m ON m.room_id = r.id WHERE r.id = ? ORDER BY m.user_id`), roomID)
		if err != nil {
			return err
		}
		defer func() { _ = rows.Close() }()
		found := false
		for rows.Next() {
			found = true
			var u, role sql.NullString
			if err := rows.Scan(&u, &role); err != nil {
				return err
			}
			if u.Valid {
				out = append(out, Member{RoomID: roomID, UserID: u.String, Role: Role(role.String)})
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if !found {
			return sql.ErrNoRows
		}
		return nil
	}()
	if err != nil {
		return nil, s.wrap("room", err)
	}
	if out == nil {
		out = []Member{}
	}
	return out, nil
}

func (s *sqlStore) RoomsOf(ctx context.Context, userID string) ([]Conversation, error) {
	if err := checkID("user id", userID); err != nil {
		return nil, err
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, s.q(`SELECT r.id, r.name, r.kind, r.owner, r.created, r.last_active, m.role
		FROM store_members m JOIN store_rooms r ON r.id = m.room_id WHERE m.user_id = ?
		ORDER BY r.last_active DESC, r.id`), userID)
	if err != nil {
		return nil, s.wrap("rooms of", err)
	}
	defer func() { _ = rows.Close() }()
	var out []Conversation
	for rows.Next() {
		var role string
		r, err := scanRoom(rows, &role)
		if err != nil {
			return nil, s.wrap("rooms of", err)
		}
		out = append(out, Conversation{Room: r, Role: Role(role)})
	}
	return out, s.wrap("rooms of", rows.Err())
}
