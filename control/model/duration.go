package model

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// ParseDuration parses a Go duration string ("1m30s") that may start with a
// whole number of days ("30d", "1d12h"), which Go's parser lacks and SLO
// windows need.
func ParseDuration(s string) (time.Duration, error) {
	body, neg := strings.CutPrefix(s, "-")
	if !neg {
		body = strings.TrimPrefix(body, "+")
	}
	i := strings.IndexByte(body, 'd')
	if i <= 0 || strings.Trim(body[:i], "0123456789") != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q: want a Go duration like 1m30s, or days like 30d", s)
		}
		return d, nil
	}
	days, err := strconv.ParseInt(body[:i], 10, 64)
	if err != nil || days > math.MaxInt64/int64(24*time.Hour) {
		return 0, fmt.Errorf("invalid duration %q: want a whole number of days before d", s)
	}
	d := time.Duration(days) * 24 * time.Hour
	if rest := body[i+1:]; rest != "" {
		r, err := time.ParseDuration(rest)
		if err != nil || r < 0 || r > math.MaxInt64-d {
			return 0, fmt.Errorf("invalid duration %q: want a Go duration like 12h after the days", s)
		}
		d += r
	}
	if neg {
		d = -d
	}
	return d, nil
}

// String formats the duration the way Go does ("720h0m0s").
func (d Duration) String() string { return d.Duration.String() }

// MarshalYAML writes the duration as a string that ParseDuration reads back.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads a duration string; see ParseDuration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: expected a duration string", n.Line)
	}
	v, err := ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	d.Duration = v
	return nil
}

// MarshalJSON writes the duration as a string ("5s"), as in the YAML.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a duration string; see ParseDuration.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: %w", err)
	}
	v, err := ParseDuration(s)
	if err != nil {
		return err
	}
	d.Duration = v
	return nil
}
