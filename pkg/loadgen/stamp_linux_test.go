package loadgen

import (
	"encoding/binary"
	"syscall"
	"testing"
	"unsafe"
)

// TestRxStamp reads SCM_TIMESTAMPNS out of a control buffer, after another
// control message, and nothing out of a buffer without one or cut short.
func TestRxStamp(t *testing.T) {
	msg := func(level, typ int32, data []byte) []byte {
		b := make([]byte, syscall.CmsgSpace(len(data)))
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&b[0]))
		h.Level, h.Type = level, typ
		h.SetLen(syscall.CmsgLen(len(data)))
		copy(b[syscall.SizeofCmsghdr:], data)
		return b
	}
	ts := make([]byte, 16)
	binary.NativeEndian.PutUint64(ts, 1700000000)
	binary.NativeEndian.PutUint64(ts[8:], 123456789)
	want := int64(1700000000)*1e9 + 123456789
	other := msg(syscall.SOL_SOCKET, syscall.SCM_RIGHTS, []byte{1, 2, 3, 4})
	stamp := msg(syscall.SOL_SOCKET, syscall.SCM_TIMESTAMPNS, ts)
	for _, tc := range []struct {
		name string
		oob  []byte
		want int64
	}{
		{"alone", stamp, want},
		{"second", append(append([]byte{}, other...), stamp...), want},
		{"none", other, 0},
		{"empty", nil, 0},
		{"cut", stamp[:20], 0},
	} {
		if got := rxStamp(tc.oob); got != tc.want {
			t.Errorf("%s: rxStamp = %d, want %d", tc.name, got, tc.want)
		}
	}
}
