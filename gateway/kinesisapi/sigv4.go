package kinesisapi

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/kaiten-edge/kaiten/gateway/access"
)

// AWS Signature Version 4 verification, header and query (presigned) forms.
// See the AWS "Signature Version 4 signing process" documentation; the
// code is written from that description.

const (
	sigAlgorithm   = "AWS4-HMAC-SHA256"
	amzDateLayout  = "20060102T150405Z"
	unsignedPaylod = "UNSIGNED-PAYLOAD"
	maxPresignTime = 7 * 24 * time.Hour
)

// authorize decides whether the request may proceed. Without configured
// access keys, only loopback clients are accepted (unless
// AllowRemoteUnsigned), signed or not. With keys, every request must carry
// a valid signature from one of them. Secrets and signatures are never
// logged or echoed.
func (s *Server) authorize(r *http.Request, body []byte) error {
	if len(s.keys) == 0 {
		if s.cfg.Auth.AllowRemoteUnsigned || access.IsLoopback(r.RemoteAddr) {
			return nil
		}
		return &apiError{Status: http.StatusForbidden, Type: ExAccessDenied,
			Message: "This gateway accepts requests from other hosts only when kinesis.auth.access_keys is configured."}
	}
	err := s.verifySigV4(r, body)
	if err != nil {
		s.log.Debug("signature refused", "remote", r.RemoteAddr, "err", err)
	}
	return err
}

// sigParts are the parsed pieces of either form.
type sigParts struct {
	keyID, date, region, service string // from the credential scope
	signedHeaders                []string
	signature                    string
	amzDate                      string
	expires                      time.Duration // query form only
	query                        bool
}

func incomplete(format string, args ...any) error {
	return newErr(ExIncompleteSignature, format, args...)
}

func invalidSig(format string, args ...any) error {
	return newErr(ExInvalidSignature, format, args...)
}

func parseCredential(p *sigParts, cred string) error {
	f := strings.Split(cred, "/")
	if len(f) != 5 || f[4] != "aws4_request" || f[0] == "" {
		return incomplete("Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/aws4_request.")
	}
	p.keyID, p.date, p.region, p.service = f[0], f[1], f[2], f[3]
	return nil
}

func parseSig(r *http.Request) (sigParts, error) {
	var p sigParts
	q := r.URL.Query()
	if auth := r.Header.Get("Authorization"); auth != "" {
		rest, ok := strings.CutPrefix(auth, sigAlgorithm+" ")
		if !ok {
			return p, incomplete("Authorization header must use the %s algorithm.", sigAlgorithm)
		}
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
			switch k {
			case "Credential":
				if err := parseCredential(&p, v); err != nil {
					return p, err
				}
			case "SignedHeaders":
				p.signedHeaders = strings.Split(v, ";")
			case "Signature":
				p.signature = v
			}
		}
		p.amzDate = r.Header.Get("X-Amz-Date")
		if p.amzDate == "" {
			if d, err := http.ParseTime(r.Header.Get("Date")); err == nil {
				p.amzDate = d.UTC().Format(amzDateLayout)
			}
		}
	} else if q.Has("X-Amz-Signature") || q.Has("X-Amz-Credential") {
		p.query = true
		if q.Get("X-Amz-Algorithm") != sigAlgorithm {
			return p, incomplete("X-Amz-Algorithm must be %s.", sigAlgorithm)
		}
		if err := parseCredential(&p, q.Get("X-Amz-Credential")); err != nil {
			return p, err
		}
		if sh := q.Get("X-Amz-SignedHeaders"); sh != "" {
			p.signedHeaders = strings.Split(sh, ";")
		}
		p.signature = q.Get("X-Amz-Signature")
		p.amzDate = q.Get("X-Amz-Date")
		secs, err := strconv.Atoi(q.Get("X-Amz-Expires"))
		if err != nil || secs < 1 || time.Duration(secs)*time.Second > maxPresignTime {
			return p, incomplete("X-Amz-Expires must be a number of seconds from 1 to 604800.")
		}
		p.expires = time.Duration(secs) * time.Second
	} else {
		return p, &apiError{Status: http.StatusForbidden, Type: ExMissingAuthToken, Message: "Missing Authentication Token"}
	}
	switch {
	case p.keyID == "":
		return p, incomplete("The request signature is missing the Credential parameter.")
	case len(p.signedHeaders) == 0:
		return p, incomplete("The request signature is missing the SignedHeaders parameter.")
	case p.signature == "":
		return p, incomplete("The request signature is missing the Signature parameter.")
	case p.amzDate == "":
		return p, incomplete("The request must contain an X-Amz-Date or Date header.")
	}
	return p, nil
}

func (s *Server) verifySigV4(r *http.Request, body []byte) error {
	p, err := parseSig(r)
	if err != nil {
		return err
	}
	secret, ok := s.keys[p.keyID]
	if !ok {
		return newErr(ExUnrecognizedClient, "The security token included in the request is invalid.")
	}
	if p.service != "kinesis" {
		return invalidSig("Credential should be scoped to correct service: 'kinesis'.")
	}
	if p.region != s.cfg.Auth.Region {
		// AWS's answer when a client signs for another region than the
		// endpoint's (AWS_REGION set wrong, say).
		return invalidSig("Credential should be scoped to a valid region, not '%s'.", p.region)
	}
	t, err := time.Parse(amzDateLayout, p.amzDate)
	if err != nil {
		return incomplete("X-Amz-Date must be in the ISO 8601 basic format yyyyMMdd'T'HHmmss'Z'.")
	}
	if p.date != t.Format("20060102") {
		return invalidSig("Credential should be scoped to a valid date: '%s'.", t.Format("20060102"))
	}
	now := s.now().UTC()
	skew := s.cfg.Auth.MaxClockSkew.Duration
	if p.query && now.After(t.Add(p.expires)) {
		return invalidSig("Signature expired: %s is now earlier than %s (%s - %s).", t.Add(p.expires).Format(amzDateLayout),
			now.Format(amzDateLayout), now.Format(amzDateLayout), p.expires)
	}
	if !p.query && t.Before(now.Add(-skew)) {
		return invalidSig("Signature expired: %s is now earlier than %s (%s - %s.)", p.amzDate,
			now.Add(-skew).Format(amzDateLayout), now.Format(amzDateLayout), skew)
	}
	if t.After(now.Add(skew)) {
		return invalidSig("Signature not yet current: %s is still later than %s (%s + %s.)", p.amzDate,
			now.Add(skew).Format(amzDateLayout), now.Format(amzDateLayout), skew)
	}
	signsHost := false
	for _, h := range p.signedHeaders {
		if h == "host" {
			signsHost = true
		}
	}
	if !signsHost {
		return invalidSig("The host header must be signed.")
	}
	sum := sha256.Sum256(body)
	bodyHash := hex.EncodeToString(sum[:])
	hashes := []string{bodyHash}
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" {
		if h == unsignedPaylod {
			hashes = []string{unsignedPaylod}
		} else if !strings.EqualFold(h, bodyHash) {
			return invalidSig("The provided X-Amz-Content-Sha256 header does not match the request body.")
		}
	} else if p.query {
		hashes = append(hashes, unsignedPaylod)
	}
	key := signingKey(secret, p.date, p.region, p.service)
	scope := strings.Join([]string{p.date, p.region, p.service, "aws4_request"}, "/")
	for _, ph := range hashes {
		creq := canonicalRequest(r, p, ph)
		h := sha256.Sum256([]byte(creq))
		sts := sigAlgorithm + "\n" + p.amzDate + "\n" + scope + "\n" + hex.EncodeToString(h[:])
		want := hex.EncodeToString(hmacSHA256(key, sts))
		if hmac.Equal([]byte(want), []byte(strings.ToLower(p.signature))) {
			return nil
		}
	}
	return invalidSig("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method.")
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func signingKey(secret, date, region, service string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	return hmacSHA256(k, "aws4_request")
}

func canonicalRequest(r *http.Request, p sigParts, payloadHash string) string {
	var b strings.Builder
	b.WriteString(r.Method)
	b.WriteByte('\n')
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	b.WriteString(uriEncode(path, false))
	b.WriteByte('\n')
	b.WriteString(canonicalQuery(r.URL.RawQuery))
	b.WriteByte('\n')
	for _, h := range p.signedHeaders {
		b.WriteString(h)
		b.WriteByte(':')
		b.WriteString(headerValue(r, h))
		b.WriteByte('\n')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Join(p.signedHeaders, ";"))
	b.WriteByte('\n')
	b.WriteString(payloadHash)
	return b.String()
}

func headerValue(r *http.Request, name string) string {
	switch name {
	case "host":
		return r.Host
	case "content-length":
		if v := r.Header.Get("Content-Length"); v != "" {
			return v
		}
		return strconv.FormatInt(r.ContentLength, 10)
	}
	vals := r.Header.Values(name)
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(out, ",")
}

func canonicalQuery(raw string) string {
	if raw == "" {
		return ""
	}
	type kv struct{ k, v string }
	var pairs []kv
	for _, part := range strings.Split(raw, "&") {
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		dk, err1 := url.QueryUnescape(k)
		dv, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			dk, dv = k, v
		}
		if dk == "X-Amz-Signature" {
			continue
		}
		pairs = append(pairs, kv{uriEncode(dk, true), uriEncode(dv, true)})
	}
	sort.Slice(pairs, func(i, j int) bool {
		if pairs[i].k != pairs[j].k {
			return pairs[i].k < pairs[j].k
		}
		return pairs[i].v < pairs[j].v
	})
	parts := make([]string, len(pairs))
	for i, p := range pairs {
		parts[i] = p.k + "=" + p.v
	}
	return strings.Join(parts, "&")
}

// uriEncode percent-encodes everything but RFC 3986 unreserved characters
// (and '/', unless encodeSlash).
func uriEncode(s string, encodeSlash bool) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b.WriteByte(c)
		case c == '/' && !encodeSlash:
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
