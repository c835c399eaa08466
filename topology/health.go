package topology

import (
	"fmt"
	"regexp"
)

// Tolerance is one of Kiali's health rate tolerances: the share of
// requests whose code matches Code (a regular expression, anchored) among
// the requests of a protocol matching Protocol; above Degraded percent the
// element is degraded, at or above Failure percent it is failing.
type Tolerance struct {
	Code     string
	Protocol string
	Degraded float64
	Failure  float64

	code, protocol *regexp.Regexp
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
	if t.Degraded < 0 || t.Failure < t.Degraded {
		return fmt.Errorf("need 0 <= degraded <= failure, got %g, %g", t.Degraded, t.Failure)
	}
	return nil
}

// healthOf rates requests by protocol then code against the tolerances:
// Healthy with traffic and no tolerance exceeded, NA without traffic.
func healthOf(tols []Tolerance, byProto map[string]map[string]float64) string {
	status := HealthNA
	for proto, codes := range byProto {
		if proto == "tcp" {
			continue
		}
		total := 0.0
		for _, r := range codes {
			total += r
		}
		if total <= 0 {
			continue
		}
		if status == HealthNA {
			status = HealthHealthy
		}
		for i := range tols {
			t := &tols[i]
			if !t.protocol.MatchString(proto) {
				continue
			}
			bad := 0.0
			for c, r := range codes {
				if t.code.MatchString(c) {
					bad += r
				}
			}
			pct := bad / total * 100
			switch {
			case bad > 0 && pct >= t.Failure:
				return HealthFailure
			case bad > 0 && pct > t.Degraded:
				status = HealthDegraded
			}
		}
	}
	return status
}
