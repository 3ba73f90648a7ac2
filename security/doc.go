// Package security holds no code of its own: its tests attack a real kaiten
// daemon (a child process built from gateway/cmd/kaiten) the way a hostile
// client on the shop network would, and check that it refuses cleanly.
//
// What is tested (go test ./security/, part of make test):
//
//   - AWS Signature V4 on the Kinesis API with configured access keys:
//     unknown key, wrong secret, tampered body, missing signature, a date
//     outside the 5-minute window, a captured request replayed once the
//     window has passed, an expired presigned URL. Each is refused with the
//     AWS error code a real SDK understands, and nothing forged is stored.
//   - The dashboard token on its APIs and websocket (and no cross-site
//     websocket with the cookie); the analytics admin token on /api/queries.
//   - MQTT over TLS to a real mosquitto that requires a client
//     certificate (certificates made by the test with crypto/x509); a
//     gateway given the wrong CA does not connect and says why.
//   - Size and count limits: request body (with and without
//     Content-Length), record size, partition key, records per request, a
//     burst of large PutRecords against the in-flight body budget, MQTT
//     payload (dead-lettered) and a 64 MiB PUBLISH (refused), websocket
//     clients, slow headers (cut after the header timeout), and stalled
//     bodies that must not block other writers.
//   - The loopback rule (gateway/access), from another host: a network
//     namespace with a veth pair (testutil.NewNetNS) gives the client a
//     non-loopback address. With the Debian package's own config
//     (http.addr 0.0.0.0, no credentials) the dashboard, its websocket,
//     /metrics, /healthz, /api/status and GET /api/queries stay open, while
//     adding or stopping queries and the Kinesis API answer 403 (and work
//     from loopback); with credentials configured a remote client that
//     carries them gets in (analytics token, SigV4, MQTT users) and one
//     without is refused; the profiler answers only on loopback; an
//     embedded broker beyond loopback without users is refused by
//     check-config and run.
//   - No secret in any log line: the daemon runs at debug level with an
//     access key secret, the dashboard and analytics tokens, an MQTT
//     password and a TLS client key, is attacked, and its whole log (and
//     /api/status and /metrics) is searched for each secret.
package security
