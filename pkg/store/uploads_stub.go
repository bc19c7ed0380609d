package store

import (
	"context"
	"errors"
	"time"
)

// errNotYet: the uploads table is being built (replaced by the backends).
var errNotYet = errors.New("store: uploads: not implemented yet")

func (s *sqlStore) CreateUpload(context.Context, Upload) (Upload, error) { return Upload{}, errNotYet }
func (s *sqlStore) Upload(context.Context, string) (Upload, error)       { return Upload{}, errNotYet }
func (s *sqlStore) AttachUploads(context.Context, string, string, string, []string) ([]Upload, error) {
	return nil, errNotYet
}
func (s *sqlStore) DeleteUpload(context.Context, string) error              { return errNotYet }
func (s *sqlStore) UploadUsage(context.Context, string) (int, int64, error) { return 0, 0, errNotYet }
func (s *sqlStore) StaleUploads(context.Context, time.Time, int) ([]Upload, error) {
	return nil, errNotYet
}
func (s *sqlStore) MessageUploads(context.Context, string, string) ([]Upload, error) {
	return nil, errNotYet
}

func (m *Memory) CreateUpload(context.Context, Upload) (Upload, error) { return Upload{}, errNotYet }
func (m *Memory) Upload(context.Context, string) (Upload, error)       { return Upload{}, errNotYet }
func (m *Memory) AttachUploads(context.Context, string, string, string, []string) ([]Upload, error) {
	return nil, errNotYet
}
func (m *Memory) DeleteUpload(context.Context, string) error              { return errNotYet }
func (m *Memory) UploadUsage(context.Context, string) (int, int64, error) { return 0, 0, errNotYet }
func (m *Memory) StaleUploads(context.Context, time.Time, int) ([]Upload, error) {
	return nil, errNotYet
}
func (m *Memory) MessageUploads(context.Context, string, string) ([]Upload, error) {
	return nil, errNotYet
}
