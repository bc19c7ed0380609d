package loadgen

import (
	"reflect"
	"testing"
	"time"
)

// TestDefaultConfig: DefaultConfig is what Validate makes of the zero
// Config, but for the derived Publishers; it holds the defaults the
// fields' comments state; and Validate takes it as it is.
func TestDefaultConfig(t *testing.T) {
	t.Parallel()
	def := DefaultConfig()
	var filled Config
	if err := filled.Validate(); err != nil {
		t.Fatal(err)
	}
	if filled.Publishers != 5 {
		t.Errorf("zero Config: %d publishers, want 5 (100 msg/s at 20 per connection)", filled.Publishers)
	}
	filled.Publishers = 0
	if !reflect.DeepEqual(def, filled) {
		t.Errorf("DefaultConfig() = %+v\nValidate fills the zero Config as %+v", def, filled)
	}

	stated := Config{
		URLs: []string{"ws://127.0.0.1:8080/ws"}, Clients: 100, Rate: 100, MaxRatePerConn: 20, Size: 100,
		Duration: 10 * time.Second, Room: "bench", Rooms: 1, ConnectConcurrency: 100,
		ConnectTimeout: 10 * time.Second, JoinTimeout: 30 * time.Second, Warmup: time.Second,
		Drain: 5 * time.Second, ProgressInterval: 500 * time.Millisecond,
	}
	if !reflect.DeepEqual(def, stated) {
		t.Errorf("DefaultConfig() = %+v\nthe fields' comments state %+v", def, stated)
	}

	c := DefaultConfig()
	if err := c.Validate(); err != nil {
		t.Fatalf("DefaultConfig does not validate: %v", err)
	}
	c.Publishers = 0
	if !reflect.DeepEqual(c, def) {
		t.Errorf("Validate changed DefaultConfig beyond Publishers: %+v", c)
	}
}

// TestValidateMaxPublishers: more than MaxPublishers publishers is an
// error.
func TestValidateMaxPublishers(t *testing.T) {
	t.Parallel()
	c := Config{Clients: 1, Rate: 1, Publishers: MaxPublishers + 1}
	if err := c.Validate(); err == nil {
		t.Errorf("%d publishers: no error", c.Publishers)
	}
}
