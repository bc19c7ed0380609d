package redisurl

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9/maintnotifications"
)

func TestParseCluster(t *testing.T) {
	o, err := ParseCluster("redis+cluster://u:p%40ss@h1:7000,h2:7001,[::1]:7002?dial_timeout=2s&client_name=x")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"h1:7000", "h2:7001", "[::1]:7002"}; !slices.Equal(o.Addrs, want) {
		t.Errorf("Addrs = %v, want %v", o.Addrs, want)
	}
	if o.Username != "u" || o.Password != "p@ss" || o.DialTimeout != 2*time.Second || o.ClientName != "x" || o.TLSConfig != nil {
		t.Errorf("options %+v", o)
	}
	if o.MaintNotificationsConfig == nil || o.MaintNotificationsConfig.Mode != maintnotifications.ModeDisabled {
		t.Errorf("maintenance notifications %+v, want disabled", o.MaintNotificationsConfig)
	}
	o, err = ParseCluster("rediss+cluster://h1:7000/")
	if err != nil || o.TLSConfig == nil || o.TLSConfig.ServerName != "h1" {
		t.Errorf("rediss+cluster: %+v, %v", o, err)
	}
	for _, bad := range []string{
		"redis://h:1", "redis+cluster://", "redis+cluster://h", "redis+cluster://h:1,", "redis+cluster://h:1/0",
		"redis+cluster://:s3cret@h:1?nope=1", "redis+cluster://:s3cret@h:1?dial_timeout=x", "redis+cluster://h:1?a=%zz",
	} {
		_, err := ParseCluster(bad)
		if !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("ParseCluster(%q) = %v, want ErrInvalid without the password", bad, err)
		}
	}
}

func TestParse(t *testing.T) {
	o, err := Parse("redis://u:p%40ss@h1:6380/2?dial_timeout=2s")
	if err != nil {
		t.Fatal(err)
	}
	if o.Addr != "h1:6380" || o.DB != 2 || o.Username != "u" || o.Password != "p@ss" || o.DialTimeout != 2*time.Second {
		t.Errorf("options %+v", o)
	}
	if o.MaintNotificationsConfig == nil || o.MaintNotificationsConfig.Mode != maintnotifications.ModeDisabled {
		t.Errorf("maintenance notifications %+v, want disabled", o.MaintNotificationsConfig)
	}
	if o, err := Parse("rediss://h1:6380?protocol=2"); err != nil || o.Protocol != 2 || o.TLSConfig == nil {
		t.Errorf("rediss, protocol=2: %+v, %v", o, err)
	}
	for _, bad := range []string{"redis+cluster://h:1", "http://:s3cret@h:1", "redis://:s3cret@h:1?nope=1", "redis://:s3cret@h:1/x", "redis://:s3cret@h:1/%zz"} {
		if _, err := Parse(bad); err == nil || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("Parse(%q) = %v, want an error without the password", bad, err)
		}
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"redis+cluster://u:s3cret@h:1,h:2?x=1": "redis+cluster://u:xxxxx@h:1,h:2?x=1",
		"redis+cluster://:s3cret@h:1":          "redis+cluster://:xxxxx@h:1",
		"rediss+cluster://u@h:1":               "rediss+cluster://u@h:1",
		"redis+cluster://h:1,h:2":              "redis+cluster://h:1,h:2",
		"redis+cluster://u:a@b@h:1":            "redis+cluster://u:xxxxx@h:1",
		"nonsense":                             "<invalid URL>",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	if !IsCluster("rediss+cluster://h:1") || IsCluster("redis://h:1") {
		t.Error("IsCluster")
	}
}
