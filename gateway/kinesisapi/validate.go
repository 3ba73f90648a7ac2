package kinesisapi

import (
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// validator gathers request-level constraint failures and reports them the
// way AWS does: "2 validation errors detected: Value 'x' at 'streamName'
// failed to satisfy constraint: Member must ...; Value ...".
type validator struct{ errs []string }

var (
	namePattern    = regexp.MustCompile(`^[a-zA-Z0-9_.-]+$`)
	arnPattern     = regexp.MustCompile(`^arn:aws.*:kinesis:.*:\d{12}:stream/\S+$`)
	hashKeyPattern = regexp.MustCompile(`^(0|[1-9]\d{0,38})$`)
	seqPattern     = regexp.MustCompile(`^(0|[1-9]\d{0,128})$`)
)

func (v *validator) fail(value any, member, constraint string) {
	val := "null"
	if value != nil {
		s := fmt.Sprint(value)
		if utf8.RuneCountInString(s) > 80 {
			s = string([]rune(s)[:80]) + "..."
		}
		val = "'" + s + "'"
	}
	v.errs = append(v.errs, fmt.Sprintf("Value %s at '%s' failed to satisfy constraint: Member must %s", val, member, constraint))
}

func (v *validator) err() error {
	switch len(v.errs) {
	case 0:
		return nil
	case 1:
		return newErr(ExValidation, "1 validation error detected: %s", v.errs[0])
	}
	return newErr(ExValidation, "%d validation errors detected: %s", len(v.errs), strings.Join(v.errs, "; "))
}

func (v *validator) required(ok bool, member string) bool {
	if !ok {
		v.fail(nil, member, "not be null")
	}
	return ok
}

// str checks an optional string's length (in characters) and pattern.
func (v *validator) str(s *string, member string, min, max int, pattern *regexp.Regexp, patternText string) {
	if s == nil {
		return
	}
	n := utf8.RuneCountInString(*s)
	switch {
	case n < min:
		v.fail(*s, member, fmt.Sprintf("have length greater than or equal to %d", min))
	case n > max:
		v.fail(*s, member, fmt.Sprintf("have length less than or equal to %d", max))
	case pattern != nil && !pattern.MatchString(*s):
		v.fail(*s, member, "satisfy regular expression pattern: "+patternText)
	}
}

func (v *validator) streamName(s *string, member string) {
	v.str(s, member, 1, 128, namePattern, "[a-zA-Z0-9_.-]+")
}

func (v *validator) streamARN(s *string, member string) {
	v.str(s, member, 1, 2048, arnPattern, `arn:aws.*:kinesis:.*:\d{12}:stream/\S+`)
}

func (v *validator) shardID(s *string, member string) {
	v.str(s, member, 1, 128, namePattern, "[a-zA-Z0-9_.-]+")
}

func (v *validator) hashKey(s *string, member string) {
	v.str(s, member, 0, 39, hashKeyPattern, `0|([1-9]\d{0,38})`)
}

func (v *validator) seq(s *string, member string) {
	v.str(s, member, 0, 129, seqPattern, `0|([1-9]\d{0,128})`)
}

func (v *validator) intRange(n *int, member string, min, max int) {
	if n == nil {
		return
	}
	switch {
	case *n < min:
		v.fail(*n, member, fmt.Sprintf("have value greater than or equal to %d", min))
	case *n > max:
		v.fail(*n, member, fmt.Sprintf("have value less than or equal to %d", max))
	}
}

func (v *validator) enum(s *string, member string, values ...string) {
	if s == nil {
		return
	}
	for _, x := range values {
		if *s == x {
			return
		}
	}
	v.fail(*s, member, "satisfy enum value set: ["+strings.Join(values, ", ")+"]")
}

// ref checks a StreamName/StreamARN pair, both optional on the wire.
func (v *validator) ref(r streamRef) {
	v.streamName(r.StreamName, "streamName")
	v.streamARN(r.StreamARN, "streamARN")
}
