package history_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/livechat/livechat/internal/sqlitedb"
	"github.com/livechat/livechat/pkg/broker/brokertest"
	"github.com/livechat/livechat/pkg/history"
	"github.com/livechat/livechat/pkg/history/historytest"
	"github.com/livechat/livechat/pkg/protocol"
)

// This file writes history data the way the backends stored it before
// messages carried a sender identity (Message.User, Message.Guest), for
// the conformance suite's LegacyMessagesWithoutSender: the schemas and the
// encoding below are copies of that release's, not of today's code.

func legacyCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// legacyPostgresSchema is schema version 1, as the first release created it.
const legacyPostgresSchema = `
CREATE TABLE history_schema_version (
	version    integer PRIMARY KEY,
	applied_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE history_rooms (
	room     text PRIMARY KEY,
	last_seq bigint NOT NULL
);
CREATE TABLE history_messages (
	room      text    NOT NULL,
	seq       bigint  NOT NULL,
	type      text    NOT NULL,
	id        text    NOT NULL,
	sender    text    NOT NULL,
	body      text    NOT NULL,
	ts        bigint  NOT NULL,
	server    text    NOT NULL,
	cid       text    NOT NULL,
	system    boolean NOT NULL,
	dedup_key bytea,
	PRIMARY KEY (room, seq)
);
CREATE UNIQUE INDEX history_messages_dedup ON history_messages (room, dedup_key)
	WHERE dedup_key IS NOT NULL;
INSERT INTO history_schema_version (version) VALUES (1);`

func legacyPostgres(t testing.TB, o history.Options, ms []protocol.Message) func() history.Store {
	u := historytest.PostgresURL(t)
	ctx := legacyCtx(t)
	conn, err := pgx.Connect(ctx, u)
	if err != nil {
		t.Fatalf("legacy postgres: %v", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()
	if _, err := conn.Exec(ctx, legacyPostgresSchema); err != nil {
		t.Fatalf("legacy postgres schema: %v", err)
	}
	for _, m := range ms {
		if _, err := conn.Exec(ctx, `INSERT INTO history_messages (room, seq, type, id, sender, body, ts, server, cid, system)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			m.Room, int64(m.Seq), m.Type, m.ID, m.From, m.Text, m.TS, m.Server, m.CID, m.System); err != nil {
			t.Fatalf("legacy postgres insert: %v", err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO history_rooms (room, last_seq) VALUES ($1, $2)
			ON CONFLICT (room) DO UPDATE SET last_seq = excluded.last_seq`, m.Room, int64(m.Seq)); err != nil {
			t.Fatalf("legacy postgres insert: %v", err)
		}
	}
	return func() history.Store {
		s, err := history.Open(context.Background(), u, o)
		if err != nil {
			t.Fatalf("Open(%s) on a version 1 schema: %v", u, err)
		}
		return s
	}
}

// legacySQLiteSchema is the first release's sqliteSchema.
const legacySQLiteSchema = `
CREATE TABLE IF NOT EXISTS history_rooms (
	room     TEXT PRIMARY KEY,
	last_seq INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history_messages (
	room   TEXT    NOT NULL,
	seq    INTEGER NOT NULL,
	type   TEXT    NOT NULL,
	id     TEXT    NOT NULL,
	sender TEXT    NOT NULL,
	body   TEXT    NOT NULL,
	ts     INTEGER NOT NULL,
	server TEXT    NOT NULL,
	cid    TEXT    NOT NULL,
	system INTEGER NOT NULL,
	PRIMARY KEY (room, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history_dedup (
	room TEXT    NOT NULL,
	key  BLOB    NOT NULL,
	seq  INTEGER NOT NULL,
	at   INTEGER NOT NULL,
	PRIMARY KEY (room, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS history_dedup_at ON history_dedup (room, at);`

func legacySQLite(t testing.TB, o history.Options, ms []protocol.Message) func() history.Store {
	path := filepath.Join(t.TempDir(), "history.db")
	ctx := legacyCtx(t)
	db, err := sql.Open("sqlite", sqlitedb.DSN(path))
	if err != nil {
		t.Fatalf("legacy sqlite: %v", err)
	}
	defer func() { _ = db.Close() }()
	if _, err := db.ExecContext(ctx, legacySQLiteSchema); err != nil {
		t.Fatalf("legacy sqlite schema: %v", err)
	}
	for _, m := range ms {
		if _, err := db.ExecContext(ctx, `INSERT INTO history_messages (room, seq, type, id, sender, body, ts, server, cid, system)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			m.Room, int64(m.Seq), m.Type, m.ID, m.From, m.Text, m.TS, m.Server, m.CID, m.System); err != nil {
			t.Fatalf("legacy sqlite insert: %v", err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO history_rooms (room, last_seq) VALUES (?, ?)
			ON CONFLICT (room) DO UPDATE SET last_seq = excluded.last_seq`, m.Room, int64(m.Seq)); err != nil {
			t.Fatalf("legacy sqlite insert: %v", err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatalf("legacy sqlite: %v", err)
	}
	u := "sqlite://" + path
	return func() history.Store {
		s, err := history.Open(context.Background(), u, o)
		if err != nil {
			t.Fatalf("Open(%s) on a first-release file: %v", u, err)
		}
		return s
	}
}

// legacyMessage is protocol.Message as the first release encoded it.
type legacyMessage struct {
	Type   string `json:"type"`
	Room   string `json:"room"`
	ID     string `json:"id"`
	Seq    uint64 `json:"seq,omitempty"`
	From   string `json:"from"`
	Text   string `json:"text"`
	TS     int64  `json:"ts"`
	Server string `json:"server"`
	CID    string `json:"cid,omitempty"`
	System bool   `json:"system,omitempty"`
}

func legacyRedis(t testing.TB, o history.Options, ms []protocol.Message) func() history.Store {
	u := brokertest.RedisURL(t)
	o.KeyPrefix = "livechat-test:" + brokertest.Prefix(t)
	ro, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("legacy redis: %v", err)
	}
	c := redis.NewClient(ro)
	defer func() { _ = c.Close() }()
	ctx := legacyCtx(t)
	for _, m := range ms {
		base := o.KeyPrefix + ":{" + m.Room + "}:"
		// Appended before the seq was known: the stored JSON has no seq.
		data, err := json.Marshal(legacyMessage{Type: m.Type, Room: m.Room, ID: m.ID, From: m.From, Text: m.Text,
			TS: m.TS, Server: m.Server, CID: m.CID, System: m.System})
		if err != nil {
			t.Fatal(err)
		}
		seq := strconv.FormatUint(m.Seq, 10)
		member := seq + " " + strconv.FormatInt(m.TS, 10) + " " + string(data)
		if err := c.ZAdd(ctx, base+"msgs", redis.Z{Score: float64(m.Seq), Member: member}).Err(); err != nil {
			t.Fatalf("legacy redis: %v", err)
		}
		if err := c.Expire(ctx, base+"msgs", time.Hour).Err(); err != nil {
			t.Fatalf("legacy redis: %v", err)
		}
		if err := c.Set(ctx, base+"seq", seq, time.Hour).Err(); err != nil {
			t.Fatalf("legacy redis: %v", err)
		}
	}
	return func() history.Store {
		s, err := history.Open(context.Background(), u, o)
		if err != nil {
			t.Fatalf("Open(%s): %v", u, err)
		}
		return s
	}
}
