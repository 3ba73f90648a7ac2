package mqtt

import (
	"errors"
	"strings"
	"testing"
)

func TestConfigDefaults(t *testing.T) {
	var c Config
	if err := c.Normalize("demo-store"); err != nil {
		t.Fatal(err)
	}
	if c.Embedded.Addr != DefaultEmbeddedAddr || c.ClientID != "kaiten-ingest-demo-store" ||
		c.MaxPayload != DefaultMaxPayload || c.Queue != DefaultQueue || c.Batch != DefaultBatch ||
		c.DeadLetterStream != "deadletter" || c.KeepAlive.Duration != DefaultKeepAlive {
		t.Fatalf("defaults not filled: %+v", c)
	}
	if len(c.Routes) != 2 || c.Routes[0].Topic != "store/+/lane/+/plate" || c.Routes[0].Key != "{1}/{3}" ||
		c.Routes[1].Topic != "store/+/lane/+/sensor/+/status" || c.Routes[0].Stream != "plates" {
		t.Fatalf("default routes: %+v", c.Routes)
	}
}

func TestConfigErrorsNameTheKey(t *testing.T) {
	cases := []struct {
		c    Config
		want string
	}{
		{Config{Routes: []Route{{Topic: "", Stream: "s", Key: "{0}"}}}, "mqtt.routes[0].topic: must not be empty"},
		{Config{Routes: []Route{{Topic: "a/#/b", Stream: "s", Key: "{0}"}}}, "mqtt.routes[0].topic"},
		{Config{Routes: []Route{{Topic: "a", Key: "{0}"}}}, "mqtt.routes[0].stream: must not be empty"},
		{Config{Routes: []Route{{Topic: "a", Stream: "s"}}}, "mqtt.routes[0].key: must not be empty"},
		{Config{Routes: []Route{{Topic: "a", Stream: "s", Key: "{x"}}}, "mqtt.routes[0].key"},
		{Config{Routes: []Route{{Topic: "a", Stream: "s", Key: "{0}"}, {Topic: "b", Stream: "s", Key: "{0}", Payload: "xml"}}}, "mqtt.routes[1].payload: \"xml\""},
		{Config{Routes: []Route{}}, "mqtt.routes: must list at least one route"},
		{Config{Broker: "http://x:1"}, "mqtt.broker"},
		{Config{Broker: "localhost"}, "mqtt.broker"},
		{Config{MaxPayload: 2 << 20}, "mqtt.max_payload"},
		{Config{Batch: 501}, "mqtt.batch"},
		{Config{Queue: -1}, "mqtt.queue"},
		{Config{TLS: TLSConfig{CertFile: "x"}}, "mqtt.tls: cert_file and key_file go together"},
		{Config{TLS: TLSConfig{CAFile: "/nonexistent/ca.pem"}}, "mqtt.tls.ca_file"},
		{Config{PasswordFile: "/nonexistent/pw"}, "mqtt.password_file"},
		{Config{Embedded: EmbeddedConfig{Users: []User{{Username: "a"}}}}, "mqtt.embedded.users[0].password: must not be empty"},
	}
	for _, c := range cases {
		err := c.c.Normalize("s")
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: got %v, want an ErrConfig naming %q", c.c, err, c.want)
		}
	}
	ok := Config{Broker: "ssl://broker.local:8883"}
	if err := ok.Normalize("s"); err != nil {
		t.Fatal(err)
	}
}
