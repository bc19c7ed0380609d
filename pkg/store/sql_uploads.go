package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"
)

const uploadCols = `id, user_id, room, type, name, size, width, height, thumb, sha256, created, message`

func scanUpload(sc scanner) (Upload, error) {
	var u Upload
	var width, height, created int64
	err := sc.Scan(&u.ID, &u.UserID, &u.Room, &u.Type, &u.Name, &u.Size, &width, &height, &u.Thumb, &u.SHA256, &created, &u.Message)
	u.Width, u.Height, u.Created = int(width), int(height), fromUs(created)
	return u, err
}

// queryUploads runs a SELECT of uploadCols and collects the rows.
func queryUploads(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args ...any) ([]Upload, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer func() { _ = rows.Close() }()
	var out []Upload
	for rows.Next() {
		u, err := scanUpload(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, u)
	}
	return out, rows.Err()
}

func (s *sqlStore) CreateUpload(ctx context.Context, u Upload) (Upload, error) {
	if err := checkUpload(u); err != nil {
		return Upload{}, err
	}
	u.Created = micro(u.Created)
	if err := s.open(); err != nil {
		return Upload{}, err
	}
	_, err := s.w.ExecContext(ctx, s.q(`INSERT INTO store_uploads (`+uploadCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		u.ID, u.UserID, u.Room, u.Type, u.Name, u.Size, int64(u.Width), int64(u.Height), u.Thumb, u.SHA256, us(u.Created), u.Message)
	if err != nil {
		return Upload{}, s.wrap("create upload", err)
	}
	return u, nil
}

func (s *sqlStore) Upload(ctx context.Context, id string) (Upload, error) {
	if err := checkID("upload id", id); err != nil {
		return Upload{}, err
	}
	if err := s.open(); err != nil {
		return Upload{}, err
	}
	u, err := scanUpload(s.r.QueryRowContext(ctx, s.q(`SELECT `+uploadCols+` FROM store_uploads WHERE id = ?`), id))
	if err != nil {
		return Upload{}, s.wrap("upload", err)
	}
	return u, nil
}

// AttachUploads reads the uploads in one write transaction (locking their
// rows on PostgreSQL, in id order so concurrent calls cannot deadlock),
// checks them all, then sets Message where it is empty. A concurrent call
// for the same uploads waits for the lock and then reads the Message the
// first one set.
func (s *sqlStore) AttachUploads(ctx context.Context, userID, room, messageID string, ids []string) ([]Upload, error) {
	if err := checkAttach(userID, room, messageID, ids); err != nil {
		return nil, err
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	in := strings.Repeat("?, ", len(ids)-1) + "?"
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	var out []Upload
	err := s.tx(ctx, func(tx *sql.Tx) error {
		got, err := queryUploads(ctx, tx, s.q(`SELECT `+uploadCols+` FROM store_uploads WHERE id IN (`+in+`) ORDER BY id`+s.d.forUpdate), args...)
		if err != nil {
			return err
		}
		byID := make(map[string]Upload, len(got))
		for _, u := range got {
			byID[u.ID] = u
		}
		out = make([]Upload, len(ids))
		var set []any
		for i, id := range ids {
			u, ok := byID[id]
			if !ok || u.UserID != userID || u.Room != room {
				return fmt.Errorf("%w: upload %q of that user in that room", ErrNotFound, id)
			}
			if u.Message == "" {
				u.Message = messageID
				set = append(set, id)
			}
			out[i] = u
		}
		if len(set) == 0 {
			return nil
		}
		res, err := tx.ExecContext(ctx, s.q(`UPDATE store_uploads SET message = ? WHERE message = '' AND id IN (`+
			strings.Repeat("?, ", len(set)-1)+`?)`), append([]any{messageID}, set...)...)
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n != int64(len(set)) {
			// Cannot happen with the rows locked; refuse rather than lie.
			return fmt.Errorf("%d of %d rows changed", n, len(set))
		}
		return nil
	})
	if err != nil {
		return nil, s.wrap("attach uploads", err)
	}
	return out, nil
}

func (s *sqlStore) DeleteUpload(ctx context.Context, id string) error {
	if err := checkID("upload id", id); err != nil {
		return err
	}
	return s.exec(ctx, "upload", `DELETE FROM store_uploads WHERE id = ?`, id)
}

func (s *sqlStore) UploadUsage(ctx context.Context, userID string) (int, int64, error) {
	if err := checkID("user id", userID); err != nil {
		return 0, 0, err
	}
	if err := s.open(); err != nil {
		return 0, 0, err
	}
	var n, total int64
	err := s.r.QueryRowContext(ctx, s.q(`SELECT count(*), coalesce(sum(size), 0) FROM store_uploads WHERE user_id = ?`), userID).Scan(&n, &total)
	if err != nil {
		return 0, 0, s.wrap("upload usage", err)
	}
	return int(n), total, nil
}

func (s *sqlStore) StaleUploads(ctx context.Context, before time.Time, limit int) ([]Upload, error) {
	if err := s.open(); err != nil {
		return nil, err
	}
	out, err := queryUploads(ctx, s.r, s.q(`SELECT `+uploadCols+` FROM store_uploads WHERE message = '' AND created < ?
		ORDER BY created, id LIMIT ?`), us(before), pageLimit(limit))
	if err != nil {
		return nil, s.wrap("stale uploads", err)
	}
	return out, nil
}

func (s *sqlStore) MessageUploads(ctx context.Context, room, messageID string) ([]Upload, error) {
	if err := errorsJoin(checkID("room id", room), checkID("message id", messageID)); err != nil {
		return nil, err
	}
	if err := s.open(); err != nil {
		return nil, err
	}
	out, err := queryUploads(ctx, s.r, s.q(`SELECT `+uploadCols+` FROM store_uploads WHERE room = ? AND message = ? ORDER BY id`), room, messageID)
	if err != nil {
		return nil, s.wrap("message uploads", err)
	}
	return out, nil
}
