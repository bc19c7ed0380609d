package server

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/livechat/livechat/pkg/history"
)

// TestDefaultConfigIsWhatNewFills: DefaultConfig is the zero Config as New
// fills it, a Config built from it is valid and taken as it is, and it
// holds the defaults the fields' comments state.
func TestDefaultConfigIsWhatNewFills(t *testing.T) {
	def := DefaultConfig()
	filled := Config{AppID: "a"}
	if err := filled.fill(); err != nil {
		t.Fatal(err)
	}
	filled.AppID = ""
	if !reflect.DeepEqual(def, filled) {
		t.Errorf("DefaultConfig() = %+v\nNew fills the zero Config as %+v", def, filled)
	}

	again := DefaultConfig()
	again.AppID = "a"
	want := again
	if err := again.fill(); err != nil {
		t.Fatalf("DefaultConfig with an AppID: %v", err)
	}
	if !reflect.DeepEqual(again, want) {
		t.Errorf("fill changed DefaultConfig: %+v, want %+v", again, want)
	}

	stated := Config{
		Prefix: "livechat", Version: "dev", MaxConnsPerIP: 200, MaxRoomsPerConn: 20, ReadLimit: 16 << 10,
		SendQueue: 256, WriteTimeout: 10 * time.Second, PongWait: 60 * time.Second, PingPeriod: 54 * time.Second,
		RatePerSec: 20, RateBurst: 40, RateStrikes: 20, HeartbeatInterval: 2 * time.Second,
		ClientHeartbeat: 10 * time.Second, PresenceInterval: 3 * time.Second, JoinHistory: 50, ReplayLimit: 1000,
		HistoryTimeout: 3 * time.Second, GapTimeout: 30 * time.Second, SweepInterval: 5 * time.Second, BrokerLossGrace: 5 * time.Second,
		AuthTimeout: 5 * time.Second, Logger: def.Logger,
	}
	if !reflect.DeepEqual(def, stated) {
		t.Errorf("DefaultConfig() = %+v\nthe fields' comments state %+v", def, stated)
	}
}

// TestConfigDefaultsOnlyZeroOrNegative: set fields are kept, negative ones
// take the default, except ClientHeartbeat (negative: off) and DrainDelay
// (negative: 0).
func TestConfigDefaultsOnlyZeroOrNegative(t *testing.T) {
	c := Config{AppID: "a", Prefix: "p", MaxConnsPerIP: 3, SendQueue: -1, PongWait: time.Second,
		ClientHeartbeat: -1, DrainDelay: -time.Second, ReplayLimit: 1 << 30, JoinHistory: 1 << 20}
	if err := c.fill(); err != nil {
		t.Fatal(err)
	}
	if c.Prefix != "p" || c.MaxConnsPerIP != 3 || c.SendQueue != defaultSendQueue || c.PingPeriod != 900*time.Millisecond ||
		c.ClientHeartbeat != -1 || c.DrainDelay != 0 {
		t.Errorf("filled %+v", c)
	}
	if c.ReplayLimit != history.MaxPage || c.JoinHistory != history.MaxPage {
		t.Errorf("ReplayLimit %d JoinHistory %d: want both bounded by history.MaxPage", c.ReplayLimit, c.JoinHistory)
	}
}

// TestConfigErrors: each check of fill returns ErrConfig.
func TestConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{},
		{AppID: "a", PongWait: time.Second, PingPeriod: time.Second},
		{AppID: "a", ClientHeartbeat: minClientHeartbeat - 1},
		{AppID: "a", NoGuests: true}, // nobody could sign in
	} {
		if err := c.fill(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: err %v, want ErrConfig", c, err)
		}
	}
}
