package model

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// maxRetries bounds retry attempts: more only multiplies load on a service
// that is already failing.
const maxRetries = 10

// retryOn are the conditions Envoy understands in retry_on (HTTP and gRPC).
var retryOn = []string{
	"5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "envoy-ratelimited",
	"retriable-4xx", "refused-stream", "retriable-status-codes", "retriable-headers",
	"http3-post-connect-failure", "cancelled", "deadline-exceeded", "internal",
	"resource-exhausted", "unavailable",
}

// grpcCodes are the gRPC status code names a fault may abort with.
var grpcCodes = []string{
	"CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
}

func (v *validator) route(r *TrafficRoute, ix *index) {
	o := r.Origin
	svc := ix.services[r.Namespace+"/"+r.Spec.Service]
	switch key := r.Namespace + "/" + r.Spec.Service; {
	case r.Spec.Service == "":
		v.errorf(o, "spec.service", "required: the name of a service in namespace %s", r.Namespace)
	case svc == nil:
		v.errorf(o, "spec.service", "service %s not found in namespace %s", r.Spec.Service, r.Namespace)
	case ix.routes[key] != nil:
		first := ix.routes[key]
		v.errorf(o, "spec.service", "service %s already has a route: TrafficRoute %s at %s:%d", r.Spec.Service, first.Key(), first.Origin.File, first.Origin.Line)
	default:
		ix.routes[key] = r
	}
	v.subsets(r, svc, ix)
	v.trafficPolicy(r, svc)
	if len(r.Spec.Rules) == 0 {
		v.errorf(o, "spec.rules", "at least one rule is required")
	}
	for i := range r.Spec.Rules {
		v.rule(r, i)
	}
	if n := len(r.Spec.Rules); n > 0 && r.Spec.Rules[n-1].Match != nil {
		v.warnf(o, indexPath("spec.rules", n-1)+".match", "the last rule has a match, so requests that match no rule get no route; drop it to make the last rule the default")
	}
}

// subsets checks subset names and labels, and warns about empty subsets
// when the service is known.
func (v *validator) subsets(r *TrafficRoute, svc *Service, ix *index) {
	seen := map[string]int{}
	for i, s := range r.Spec.Subsets {
		at := indexPath("spec.subsets", i)
		if msg := labelError(s.Name); msg != "" {
			v.errorf(r.Origin, at+".name", "%s", msg)
		} else if j, dup := seen[s.Name]; dup {
			v.errorf(r.Origin, at+".name", "subset %s is already defined by spec.subsets[%d]", s.Name, j)
		} else {
			seen[s.Name] = i
		}
		if len(s.Labels) == 0 {
			v.errorf(r.Origin, at+".labels", "required: the labels that pick the subset's workloads")
			continue
		}
		if svc != nil && len(ix.sel.selected(svc.Namespace, svc.Spec.Selector, s.Labels)) == 0 {
			v.warnf(r.Origin, at, "subset %s selects no workload", s.Name)
		}
	}
}

func (v *validator) rule(r *TrafficRoute, i int) {
	o, rule, at := r.Origin, r.Spec.Rules[i], indexPath("spec.rules", i)
	if rule.Match != nil {
		for _, h := range sortedKeys(rule.Match.Headers) {
			if h == "" {
				v.errorf(o, at+".match.headers", "a header name must not be empty")
			}
			v.stringMatch(o, fieldPath(at+".match.headers", h), rule.Match.Headers[h])
		}
		if rule.Match.Path != nil {
			v.stringMatch(o, at+".match.path", *rule.Match.Path)
		}
	}
	v.destinations(r, at, rule.Destinations)
	if rule.Timeout.Duration < 0 {
		v.errorf(o, at+".timeout", "must not be negative")
	}
	if rt := rule.Retries; rt != nil {
		if rt.Attempts > maxRetries {
			v.errorf(o, at+".retries.attempts", "%d is more than %d", rt.Attempts, maxRetries)
		}
		if rt.PerTryTimeout.Duration < 0 {
			v.errorf(o, at+".retries.perTryTimeout", "must not be negative")
		}
		for c := range strings.SplitSeq(rt.RetryOn, ",") {
			if c = strings.TrimSpace(c); c != "" && !slices.Contains(retryOn, c) {
				v.warnf(o, at+".retries.retryOn", "unknown retry condition %q; Envoy ignores it (known: %s)", c, strings.Join(retryOn, ", "))
			}
		}
	}
	if rule.Fault != nil {
		v.fault(o, at+".fault", rule.Fault)
	}
}

func (v *validator) stringMatch(o Origin, at string, m StringMatch) {
	set := 0
	for _, s := range []string{m.Exact, m.Prefix, m.Regex} {
		if s != "" {
			set++
		}
	}
	switch {
	case set == 0:
		v.errorf(o, at, "set one of exact, prefix or regex")
	case set > 1:
		v.errorf(o, at, "set only one of exact, prefix or regex")
	}
	if m.Regex != "" {
		if _, err := regexp.Compile(m.Regex); err != nil {
			v.errorf(o, at+".regex", "not an RE2 regular expression: %v", err)
		}
	}
}

// destinations checks one rule's destinations: known, distinct subsets
// whose weights add up to 100.
func (v *validator) destinations(r *TrafficRoute, at string, dests []Destination) {
	if len(dests) == 0 {
		v.errorf(r.Origin, at+".destinations", "at least one destination is required")
		return
	}
	var sum uint64
	seen := map[string]int{}
	for j, d := range dests {
		dat := indexPath(at+".destinations", j)
		sum += uint64(d.Weight)
		switch k, dup := seen[d.Subset]; {
		case d.Subset == "":
			v.errorf(r.Origin, dat+".subset", "required: %s", subsetNames(r))
		case r.Subset(d.Subset) == nil:
			v.errorf(r.Origin, dat+".subset", "subset %s is not defined in spec.subsets (%s)", d.Subset, subsetNames(r))
		case dup:
			v.errorf(r.Origin, dat+".subset", "subset %s is already a destination of this rule, at %s", d.Subset, indexPath(at+".destinations", k))
		default:
			seen[d.Subset] = j
		}
	}
	if sum != 100 {
		v.errorf(r.Origin, at+".destinations", "weights sum to %d, want 100", sum)
	}
}

// subsetNames lists a route's subsets for messages.
func subsetNames(r *TrafficRoute) string {
	if len(r.Spec.Subsets) == 0 {
		return "the route defines no subsets"
	}
	names := make([]string, len(r.Spec.Subsets))
	for i, s := range r.Spec.Subsets {
		names[i] = s.Name
	}
	return "one of " + strings.Join(names, ", ")
}

func (v *validator) fault(o Origin, at string, f *Fault) {
	if a := f.Abort; a != nil {
		v.percent(o, at+".abort.percent", a.Percent)
		switch {
		case a.HTTPStatus == 0 && a.GRPCStatus == "":
			v.errorf(o, at+".abort", "set httpStatus or grpcStatus")
		case a.HTTPStatus != 0 && a.GRPCStatus != "":
			v.errorf(o, at+".abort", "set only one of httpStatus and grpcStatus")
		case a.HTTPStatus != 0 && (a.HTTPStatus < 200 || a.HTTPStatus > 599):
			v.errorf(o, at+".abort.httpStatus", "%d is out of range 200..599", a.HTTPStatus)
		case a.GRPCStatus != "" && !slices.Contains(grpcCodes, a.GRPCStatus):
			v.errorf(o, at+".abort.grpcStatus", "%s", oneOf("grpcStatus", a.GRPCStatus, grpcCodes))
		}
	}
	if d := f.Delay; d != nil {
		v.percent(o, at+".delay.percent", d.Percent)
		if d.FixedDelay.Duration < 0 {
			v.errorf(o, at+".delay.fixedDelay", "must not be negative")
		}
	}
}

func (v *validator) percent(o Origin, at string, p float64) {
	if !(p >= 0 && p <= 100) {
		v.errorf(o, at, "%s is out of range 0..100", fmt.Sprint(p))
	}
}
