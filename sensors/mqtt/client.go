package mqtt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// subscriber is the paho client on an external broker: QoS 1, persistent
// session, acknowledgement by hand after the durable append.
type subscriber struct {
	c   paho.Client
	log *slog.Logger
}

func tlsConfig(c *Config) (*tls.Config, error) {
	u, _ := url.Parse(c.Broker)
	secure := u != nil && (u.Scheme == "ssl" || u.Scheme == "tls" || u.Scheme == "mqtts" || u.Scheme == "wss")
	if !secure && c.TLS == (TLSConfig{}) {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.TLS.ServerName, InsecureSkipVerify: c.TLS.InsecureSkipVerify} //nolint:gosec // opt-in, documented as tests only
	if tc.ServerName == "" && u != nil {
		tc.ServerName = u.Hostname()
	}
	if c.TLS.CAFile != "" {
		pem, err := os.ReadFile(c.TLS.CAFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.tls.ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt.tls.ca_file %s: no PEM certificate found", c.TLS.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.TLS.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("mqtt.tls.cert_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// startSubscriber connects in the background (retrying with backoff until
// the broker answers) and subscribes to every route on each connect.
func startSubscriber(ctx context.Context, c *Config, w *writer, log *slog.Logger, m *metrics) (*subscriber, error) {
	tc, err := tlsConfig(c)
	if err != nil {
		return nil, err
	}
	pw, err := c.password()
	if err != nil {
		return nil, err
	}
	filters := map[string]byte{}
	for _, r := range c.Routes {
		filters[r.Topic] = 1
	}
	s := &subscriber{log: log}
	handler := func(_ paho.Client, msg paho.Message) {
		im := Message{Topic: msg.Topic(), Payload: msg.Payload(), QoS: msg.Qos(), Dup: msg.Duplicate(), Received: time.Now()}
		err := w.submit(ctx, im, func(err error) {
			if err == nil {
				msg.Ack()
			}
		})
		if err != nil {
			log.Debug("mqtt: message not taken (stopping); the broker will redeliver it", "topic", im.Topic)
		}
	}
	opts := paho.NewClientOptions().
		AddBroker(c.Broker).
		SetClientID(c.ClientID).
		SetCleanSession(false).
		SetResumeSubs(true).
		SetOrderMatters(true). // one handler at a time, in order; it only queues
		SetAutoAckDisabled(true).
		SetKeepAlive(c.KeepAlive.Duration).
		SetConnectTimeout(c.ConnectTimeout.Duration).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(time.Second).
		SetMaxReconnectInterval(c.MaxReconnectInterval.Duration).
		SetDefaultPublishHandler(handler).
		SetOnConnectHandler(func(cl paho.Client) {
			m.setConnected(true)
			m.setError(nil)
			log.Info("mqtt: connected", "broker", redact(c.Broker), "client_id", c.ClientID)
			tok := cl.SubscribeMultiple(filters, handler)
			if !tok.WaitTimeout(c.ConnectTimeout.Duration) || tok.Error() != nil {
				err := tok.Error()
				if err == nil {
					err = fmt.Errorf("no SUBACK within %s", c.ConnectTimeout.Duration)
				}
				m.setError(err)
				log.Error("mqtt: subscribe failed; the session keeps earlier subscriptions", "err", err)
				return
			}
			m.isSubscribed.Store(true)
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			m.setConnected(false)
			m.setError(err)
			log.Warn("mqtt: connection lost; reconnecting", "broker", redact(c.Broker), "err", err)
		}).
		SetConnectionNotificationHandler(func(_ paho.Client, n paho.ConnectionNotification) {
			var err error
			switch n := n.(type) {
			case paho.ConnectionNotificationBrokerFailed:
				err = n.Reason
			case paho.ConnectionNotificationFailed:
				err = n.Reason
			}
			if err == nil {
				return
			}
			// Retries come every second or so: log a failure once, and
			// again only when the reason changes.
			m.mu.Lock()
			same := m.lastError == err.Error()
			m.mu.Unlock()
			m.setError(err)
			if !same {
				log.Warn("mqtt: cannot connect to the broker; retrying with backoff", "broker", redact(c.Broker), "err", err)
			}
		}).
		SetReconnectingHandler(func(paho.Client, *paho.ClientOptions) {
			m.reconnects.Inc()
			m.nReconnects.Add(1)
		})
	if tc != nil {
		opts.SetTLSConfig(tc)
	}
	if c.Username != "" {
		opts.SetUsername(c.Username)
	}
	if pw != "" {
		opts.SetPassword(pw)
	}
	s.c = paho.NewClient(opts)
	s.c.Connect() // with ConnectRetry it keeps trying in the background
	return s, nil
}

// close disconnects, giving queued acknowledgements a moment to go out.
func (s *subscriber) close() {
	s.c.Disconnect(250)
}

// redact drops any user:password from a broker URL for logs.
func redact(broker string) string {
	u, err := url.Parse(broker)
	if err != nil || u.User == nil {
		return broker
	}
	u.User = url.User(u.User.Username())
	return u.String()
}
