package mqtt

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/stream"
)

// Message is one MQTT message handed to the pipeline.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	// Dup is the MQTT DUP flag: the broker is redelivering a message whose
	// acknowledgement it did not get.
	Dup bool
	// Received is the arrival time at the gateway.
	Received time.Time
}

// Dead-letter reason classes; the metric kaiten_mqtt_deadletter_total has
// one series per class and the dead letter's "reason" starts with it.
const (
	ReasonTooLarge    = "payload_too_large"
	ReasonInvalidJSON = "invalid_json"
	ReasonKey         = "key_template"
	ReasonRejected    = "rejected_by_store"
	ReasonNoRoute     = "no_route"
)

type compiledRoute struct {
	Route
	tmpl *Template
}

// router turns messages into entries. It is used by one goroutine.
type router struct {
	routes     []compiledRoute
	deadletter string
	maxPayload int
}

func newRouter(c *Config) (*router, error) {
	r := &router{deadletter: c.DeadLetterStream, maxPayload: int(c.MaxPayload)}
	for i, rt := range c.Routes {
		t, err := ParseTemplate(rt.Key)
		if err != nil {
			return nil, fmt.Errorf("mqtt.routes[%d].key: %w", i, err)
		}
		r.routes = append(r.routes, compiledRoute{Route: rt, tmpl: t})
	}
	return r, nil
}

// match returns the first route whose filter matches topic, or nil.
func (r *router) match(topic string) *compiledRoute {
	for i := range r.routes {
		if Match(r.routes[i].Topic, topic) {
			return &r.routes[i]
		}
	}
	return nil
}

// convert returns the stream and entry for m, or a dead letter with class
// and reason when m cannot be stored as routed.
func (r *router) convert(m *Message) (streamName string, e stream.Entry, class string) {
	rt := r.match(m.Topic)
	if rt == nil {
		return r.dead(m, ReasonNoRoute, "no route matches the topic")
	}
	if len(m.Payload) > r.maxPayload {
		return r.dead(m, ReasonTooLarge, fmt.Sprintf("payload of %d bytes is over max_payload %d", len(m.Payload), r.maxPayload))
	}
	var obj map[string]json.RawMessage
	if rt.Payload != PayloadRaw || rt.tmpl.NeedsPayload {
		if !json.Valid(m.Payload) {
			if rt.Payload != PayloadRaw {
				return r.dead(m, ReasonInvalidJSON, "payload is not valid JSON")
			}
		} else if rt.tmpl.NeedsPayload && len(m.Payload) > 0 && firstNonSpace(m.Payload) == '{' {
			_ = json.Unmarshal(m.Payload, &obj)
		}
	}
	key, err := rt.tmpl.Fill(m.Topic, obj)
	if err != nil {
		return r.dead(m, ReasonKey, err.Error())
	}
	data := m.Payload
	if rt.Payload == PayloadEnrich {
		data, err = json.Marshal(struct {
			Topic      string          `json:"topic"`
			ReceivedAt string          `json:"received_at"`
			Payload    json.RawMessage `json:"payload"`
		}{m.Topic, m.Received.UTC().Format(time.RFC3339Nano), m.Payload})
		if err != nil {
			return r.dead(m, ReasonInvalidJSON, err.Error())
		}
		if len(data) > stream.MaxRecordSize {
			return r.dead(m, ReasonTooLarge, fmt.Sprintf("enriched record of %d bytes is over the 1MiB record limit", len(data)))
		}
	}
	return rt.Stream, stream.Entry{PartitionKey: key, Data: data}, ""
}

func firstNonSpace(b []byte) byte {
	for _, c := range b {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return c
	}
	return 0
}

func (r *router) dead(m *Message, class, reason string) (string, stream.Entry, string) {
	return r.deadletter, deadEntry(m, class, reason), class
}

func deadEntry(m *Message, class, reason string) stream.Entry {
	d := stream.DeadLetter{Source: "mqtt", Topic: m.Topic, Reason: class + ": " + reason,
		Data: m.Payload, TS: m.Received.UTC().Format(time.RFC3339Nano)}
	if len(d.Data) > MaxDeadLetterData {
		d.Size, d.Truncated = len(d.Data), true
		d.Data = d.Data[:MaxDeadLetterData]
	}
	return d.Entry()
}
