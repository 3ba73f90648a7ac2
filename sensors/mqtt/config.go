// Package mqtt turns MQTT messages into stream records.
//
// Two modes share one pipeline (routes, key templates, dead letters, one
// ordered batching writer):
//
//   - External broker (Config.Broker set, e.g. the store's mosquitto): a
//     paho client subscribes with QoS 1 on a persistent session (fixed client
//     id, clean session off) and acknowledges each message by hand, only
//     after the record is durably appended. A gateway or broker restart
//     loses nothing the broker accepted: un-acknowledged messages are
//     redelivered (with the DUP flag) when the session resumes.
//   - Embedded broker (Broker empty, the default): a mochi-mqtt broker runs
//     inside the gateway and a hook appends every routed PUBLISH before the
//     broker answers it, so the publisher's own PUBACK means "durable in the
//     stream". There is no second hop to lose messages on a restart.
//
// The embedded broker pipelines each connection. mochi writes a QoS 1
// PUBACK on the client's read loop right after its OnPublish hook returns
// and has no hook that defers it; a hook that waited there for the append
// would make each connection wait one fsync per message. So the hook
// queues a routed QoS 0 or 1 message for the writer and rejects the packet
// for now (mochi then neither acknowledges nor delivers it) and the read
// loop goes on; a per-connection goroutine waits for each message's append
// in arrival order and, once it is durable, injects the packet into the
// broker again (Server.InjectPacket, marked so the hook lets it pass), and
// mochi acknowledges and delivers it as usual. Up to the broker's receive
// maximum (1024) messages, and at most queue_bytes of payload, wait per
// connection; past that the connection is not read (backpressure). The
// guarantees hold: a PUBACK only after the durable append; PUBACKs in
// publish order per connection; records in publish order in the stream; if
// a message is not stored (only when the gateway stops), nothing after it
// on that connection is acknowledged and the client is disconnected, so it
// resends. Limits: subscribers of the embedded broker get a routed message
// only once it is stored; a QoS 2 publish is still stored inline on the
// read loop (one fsync per such message per connection); a retried append
// (store full, shard throttled) can put a record behind later ones of the
// same connection, as in the external-broker mode.
//
// Delivery is at least once: a record may be stored twice when the ack of
// a stored message was lost (redelivery); such redeliveries are counted.
package mqtt

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/access"
	"github.com/kaiten-edge/kaiten/gateway/config"
	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// Defaults, used when the matching config value is zero.
const (
	DefaultEmbeddedAddr         = "127.0.0.1:1883"
	DefaultDeadLetterStream     = stream.NameDeadLetter
	DefaultMaxPayload           = 256 << 10
	DefaultQueue                = 1024
	DefaultQueueBytes           = 8 << 20
	DefaultBatch                = 500
	DefaultKeepAlive            = 30 * time.Second
	DefaultConnectTimeout       = 10 * time.Second
	DefaultMaxReconnectInterval = 30 * time.Second
	// MaxDeadLetterData caps the original bytes kept in one dead letter;
	// longer input is cut and marked "truncated" with its full "size".
	MaxDeadLetterData = 64 << 10
)

// Payload modes of a route.
const (
	// PayloadRaw stores the payload as received, unchecked.
	PayloadRaw = "raw"
	// PayloadJSON stores the payload as received but requires valid JSON;
	// anything else is dead-lettered.
	PayloadJSON = "json"
	// PayloadEnrich requires valid JSON and stores
	// {"topic":...,"received_at":...,"payload":<original JSON>}.
	PayloadEnrich = "enrich"
)

// Config is the mqtt section. The zero value is the demo default: an
// embedded broker on 127.0.0.1:1883 and the two plate routes.
type Config struct {
	// Broker is an external broker URL (tcp://host:1883, ssl://host:8883,
	// ws://..., wss://...). Empty (default) runs the embedded broker.
	Broker string `yaml:"broker"`
	// Embedded configures the embedded broker (used when Broker is empty).
	Embedded EmbeddedConfig `yaml:"embedded"`
	// ClientID is the fixed client id of the persistent session on an
	// external broker. Default "kaiten-ingest-<store_id>".
	ClientID string `yaml:"client_id"`
	// Username and Password authenticate to an external broker; default none.
	// PasswordFile, if set, is read at start instead of Password.
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	PasswordFile string `yaml:"password_file"`
	// TLS for an external broker (ssl://, tls://, mqtts://, wss://).
	TLS TLSConfig `yaml:"tls"`
	// KeepAlive default 30s; ConnectTimeout default 10s;
	// MaxReconnectInterval caps the reconnect backoff, default 30s.
	KeepAlive            config.Duration `yaml:"keepalive"`
	ConnectTimeout       config.Duration `yaml:"connect_timeout"`
	MaxReconnectInterval config.Duration `yaml:"max_reconnect_interval"`
	// MaxPayload: larger messages are dead-lettered. Default 256KiB, at most 1MiB.
	MaxPayload config.ByteSize `yaml:"max_payload"`
	// Queue bounds messages waiting for the writer (backpressure on the
	// broker connection when full). Default 1024.
	Queue int `yaml:"queue"`
	// QueueBytes bounds the payload bytes of those messages, so a burst of
	// large messages cannot balloon memory on a small board. Default 8MiB,
	// at least max_payload.
	QueueBytes config.ByteSize `yaml:"queue_bytes"`
	// Batch caps records per append. Default 500 (the PutBatch maximum).
	Batch int `yaml:"batch"`
	// DeadLetterStream receives what cannot be stored as routed. Default "deadletter".
	DeadLetterStream string `yaml:"deadletter_stream"`
	// Routes map topic filters to streams; the first matching route wins.
	// Default: DefaultRoutes.
	Routes []Route `yaml:"routes"`
}

// EmbeddedConfig is mqtt.embedded.
type EmbeddedConfig struct {
	// Addr is where the embedded broker listens. Default 127.0.0.1:1883; if
	// the default port is taken, the broker falls back to a free loopback
	// port and logs it. An address set in the config or by --mqtt-addr is
	// used as given (start fails if it is taken).
	Addr string `yaml:"addr"`
	// Users, if set, are the only clients allowed to connect (username and
	// password). Default none: then only clients on this machine
	// (loopback) may connect, and an addr beyond loopback is refused at
	// start unless AllowUnauthenticatedRemote is set.
	Users []User `yaml:"users"`
	// AllowUnauthenticatedRemote lets any client on the network connect
	// without credentials when Users is empty (a trusted sensor network
	// only). Default false.
	AllowUnauthenticatedRemote bool `yaml:"allow_unauthenticated_remote"`
}

// User is one entry of mqtt.embedded.users.
type User struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// TLSConfig is mqtt.tls.
type TLSConfig struct {
	CAFile             string `yaml:"ca_file"`              // PEM CA bundle; default the system roots
	CertFile           string `yaml:"cert_file"`            // client certificate (PEM), optional
	KeyFile            string `yaml:"key_file"`             // its key; required with cert_file
	ServerName         string `yaml:"server_name"`          // default the broker URL's host
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"` // default false; for tests only
}

// Route is one entry of mqtt.routes.
type Route struct {
	// Topic is an MQTT topic filter (+ and # wildcards). Required.
	Topic string `yaml:"topic"`
	// Stream is the target stream. Required.
	Stream string `yaml:"stream"`
	// Key is the partition-key template: literal text with {N} for topic
	// segment N (0-based: in store/demo-store/lane/3/plate, {1} is
	// demo-store and {3} is 3) and {field} or {a.b} for a top-level or
	// nested JSON payload field (strings, numbers or booleans). Default "{0}"
	// would be useless, so Key is required.
	Key string `yaml:"key"`
	// Payload is raw, json (default) or enrich; see the Payload constants.
	Payload string `yaml:"payload"`
}

// DefaultRoutes are the demo's routes: plate events and sensor heartbeats
// into stream plates, partition key {store}/{lane} from the topic.
func DefaultRoutes() []Route {
	return []Route{
		{Topic: "store/+/lane/+/plate", Stream: stream.NamePlates, Key: "{1}/{3}", Payload: PayloadJSON},
		{Topic: "store/+/lane/+/sensor/+/status", Stream: stream.NamePlates, Key: "{1}/{3}", Payload: PayloadJSON},
	}
}

// ErrConfig is wrapped by every validation error.
var ErrConfig = errors.New("mqtt: invalid config")

// Normalize fills defaults into zero values and validates. storeID names
// the default client id. Errors name the key (mqtt.routes[0].topic: ...).
func (c *Config) Normalize(storeID string) error {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, config.Errorf("mqtt."+key, format, args...))
	}
	if c.Broker != "" {
		u, err := url.Parse(c.Broker)
		switch {
		case err != nil:
			bad("broker", "%q: %v", c.Broker, err)
		case u.Host == "":
			bad("broker", "%q: want a URL such as tcp://host:1883 or ssl://host:8883", c.Broker)
		default:
			switch u.Scheme {
			case "tcp", "mqtt", "ssl", "tls", "mqtts", "ws", "wss":
			default:
				bad("broker", "%q: scheme %q: want tcp, mqtt, ssl, tls, mqtts, ws or wss", c.Broker, u.Scheme)
			}
		}
	}
	if c.Embedded.Addr == "" {
		c.Embedded.Addr = DefaultEmbeddedAddr
	}
	if c.Broker == "" && len(c.Embedded.Users) == 0 && !c.Embedded.AllowUnauthenticatedRemote && !access.LoopbackListen(c.Embedded.Addr) {
		errs = append(errs, fmt.Errorf("mqtt.embedded.users: %w: the embedded broker listens on %s, beyond loopback, "+
			"and has no users, so any device on the network could publish into the streams: list users, "+
			"keep mqtt.embedded.addr on 127.0.0.1, or set mqtt.embedded.allow_unauthenticated_remote: true",
			access.ErrRemoteUnauthenticated, c.Embedded.Addr))
	}
	for i, u := range c.Embedded.Users {
		if u.Username == "" {
			bad(fmt.Sprintf("embedded.users[%d].username", i), "must not be empty")
		}
		if u.Password == "" {
			bad(fmt.Sprintf("embedded.users[%d].password", i), "must not be empty")
		}
	}
	if c.ClientID == "" {
		c.ClientID = "kaiten-ingest-" + storeID
	}
	if len(c.ClientID) > 65535 {
		bad("client_id", "too long")
	}
	if c.PasswordFile != "" {
		if _, err := os.Stat(c.PasswordFile); err != nil {
			bad("password_file", "%v", err)
		}
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls", "cert_file and key_file go together")
	}
	for k, f := range map[string]string{"tls.ca_file": c.TLS.CAFile, "tls.cert_file": c.TLS.CertFile, "tls.key_file": c.TLS.KeyFile} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			bad(k, "%v", err)
		}
	}
	if c.KeepAlive.Duration == 0 {
		c.KeepAlive.Duration = DefaultKeepAlive
	}
	if c.ConnectTimeout.Duration == 0 {
		c.ConnectTimeout.Duration = DefaultConnectTimeout
	}
	if c.MaxReconnectInterval.Duration == 0 {
		c.MaxReconnectInterval.Duration = DefaultMaxReconnectInterval
	}
	if c.MaxPayload == 0 {
		c.MaxPayload = DefaultMaxPayload
	}
	if c.MaxPayload > stream.MaxRecordSize {
		bad("max_payload", "%d: at most 1MiB (the stream's record limit)", c.MaxPayload)
	}
	if c.Queue < 0 {
		bad("queue", "must not be negative")
	} else if c.Queue == 0 {
		c.Queue = DefaultQueue
	}
	if c.QueueBytes < 0 {
		bad("queue_bytes", "must not be negative")
	} else if c.QueueBytes == 0 {
		c.QueueBytes = DefaultQueueBytes
	}
	if c.QueueBytes < c.MaxPayload {
		bad("queue_bytes", "%d: at least max_payload (%d)", c.QueueBytes, c.MaxPayload)
	}
	if c.Batch < 0 || c.Batch > stream.MaxBatchRecords {
		bad("batch", "%d: want 1 to %d", c.Batch, stream.MaxBatchRecords)
	} else if c.Batch == 0 {
		c.Batch = DefaultBatch
	}
	if c.DeadLetterStream == "" {
		c.DeadLetterStream = DefaultDeadLetterStream
	}
	if c.Routes == nil {
		c.Routes = DefaultRoutes()
	}
	if len(c.Routes) == 0 {
		bad("routes", "must list at least one route")
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		key := fmt.Sprintf("routes[%d]", i)
		if err := ValidFilter(r.Topic); err != nil {
			bad(key+".topic", "%v", err)
		}
		if r.Stream == "" {
			bad(key+".stream", "must not be empty")
		}
		if r.Key == "" {
			bad(key+".key", "must not be empty (e.g. \"{1}/{3}\")")
		} else if _, err := ParseTemplate(r.Key); err != nil {
			bad(key+".key", "%v", err)
		}
		switch r.Payload {
		case "":
			r.Payload = PayloadJSON
		case PayloadRaw, PayloadJSON, PayloadEnrich:
		default:
			bad(key+".payload", "%q: want raw, json or enrich", r.Payload)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return nil
}

// password returns the configured password, reading PasswordFile if set.
func (c *Config) password() (string, error) {
	if c.PasswordFile == "" {
		return c.Password, nil
	}
	b, err := os.ReadFile(c.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("mqtt.password_file: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}
