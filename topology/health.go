package topology

import (
	"fmt"
	"regexp"
)

// Tolerance is one of Kiali's health rate tolerances: the share of
// requests whose code matches Code (a regular expression, anchored) among
// the requests of a protocol matching Protocol in a direction matching
// Direction ("inbound" or "outbound"; empty means both); above Degraded
// percent the element is degraded, at or above Failure percent failing.
type Tolerance struct {
	Code      string
	Protocol  string
	Direction string
	Degraded  float64
	Failure   float64

	code, protocol, direction *regexp.Regexp
}

// DefaultTolerances are Kiali's defaults: any HTTP 5xx is degraded and 10%
// failing; HTTP 4xx 10%/20%; gRPC errors (status 1-16) any/10%; no
// response any/10%.
func DefaultTolerances() []Tolerance {
	return []Tolerance{
		{Code: `5\d\d`, Protocol: "http", Degraded: 0, Failure: 10},
		{Code: `4\d\d`, Protocol: "http", Degraded: 10, Failure: 20},
		{Code: `[1-9]|1[0-6]`, Protocol: "grpc", Degraded: 0, Failure: 10},
		{Code: `-`, Protocol: "http|grpc", Degraded: 0, Failure: 10},
	}
}

// compile checks and compiles the expressions.
func (t *Tolerance) compile() error {
	var err error
	if t.code, err = regexp.Compile("^(?:" + t.Code + ")$"); err != nil {
		return fmt.Errorf("code: %w", err)
	}
	if t.protocol, err = regexp.Compile("^(?:" + t.Protocol + ")$"); err != nil {
		return fmt.Errorf("protocol: %w", err)
	}
	dir := t.Direction
	if dir == "" {
		dir = ".*"
	}
	if t.direction, err = regexp.Compile("^(?:" + dir + ")$"); err != nil {
		return fmt.Errorf("direction: %w", err)
	}
	if t.Degraded < 0 || t.Failure < t.Degraded {
		return fmt.Errorf("need 0 <= degraded <= failure, got %g, %g", t.Degraded, t.Failure)
	}
	return nil
}

// healthRater rates request codes against the tolerances, remembering
// which tolerance each code and protocol matches (codes are few, elements
// many).
type healthRater struct {
	tols  []Tolerance
	proto [numProto][2][]bool // protocol, direction (inbound, outbound) → tolerance applies
	codes map[string][]bool
}

// Directions of traffic, for tolerances.
const (
	inbound = iota
	outbound
)

func newHealthRater(tols []Tolerance) *healthRater {
	h := &healthRater{tols: tols, codes: map[string][]bool{}}
	for p := range numProto {
		for dir, name := range [2]string{"inbound", "outbound"} {
			h.proto[p][dir] = make([]bool, len(tols))
			for i := range tols {
				h.proto[p][dir][i] = tols[i].protocol.MatchString(protoNames[p]) && tols[i].direction.MatchString(name)
			}
		}
	}
	return h
}

func (h *healthRater) codeMatches(code string) []bool {
	m, ok := h.codes[code]
	if !ok {
		m = make([]bool, len(h.tols))
		for i := range h.tols {
			m[i] = h.tols[i].code.MatchString(code)
		}
		h.codes[code] = m
	}
	return m
}

// status is the health of requests of protocol p in direction dir by
// code: Failure or Degraded when a tolerance is exceeded (Failure wins),
// Healthy with traffic and none exceeded, NA without request traffic.
func (h *healthRater) status(p, dir int, codes []codeCount) string {
	if p == pTCP {
		return HealthNA
	}
	total := 0.0
	for _, c := range codes {
		total += c.reqs
	}
	if total <= 0 {
		return HealthNA
	}
	status := HealthHealthy
	for i := range h.tols {
		if !h.proto[p][dir][i] {
			continue
		}
		bad := 0.0
		for _, c := range codes {
			if h.codeMatches(c.code)[i] {
				bad += c.reqs
			}
		}
		pct := bad / total * 100
		switch {
		case bad > 0 && pct >= h.tols[i].Failure:
			return HealthFailure
		case bad > 0 && pct > h.tols[i].Degraded:
			status = HealthDegraded
		}
	}
	return status
}

// worst is the worst of two statuses.
func worst(a, b string) string {
	rank := map[string]int{HealthNA: 0, HealthHealthy: 1, HealthDegraded: 2, HealthFailure: 3}
	if rank[b] > rank[a] {
		return b
	}
	return a
}
