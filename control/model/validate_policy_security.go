package model

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

var (
	mtlsModes    = []string{MTLSStrict, MTLSPermissive, MTLSDisable}
	authzActions = []string{ActionAllow, ActionDeny}
	httpMethod   = regexp.MustCompile(`^[A-Z]+$`)
	headerKey    = regexp.MustCompile(`^request\.headers\[([A-Za-z0-9!#$%&'*+.^_` + "`" + `|~-]+)\]$`)
)

func (v *validator) peerAuthentication(p *PeerAuthentication, ix *index) {
	if !slices.Contains(mtlsModes, p.Spec.MTLS) {
		v.errorf(p.Origin, "spec.mtls", "%s", oneOf("mode", p.Spec.MTLS, mtlsModes))
	}
	v.policySelector(p.Namespace, p.Spec.Selector, p.Origin, ix)
	if p.Spec.MTLS == MTLSPermissive {
		v.warnf(p.Origin, "spec.mtls", "proxyless gRPC servers cannot accept TLS and plaintext on one port: "+
			"in PERMISSIVE they accept plaintext and clients send plaintext to them; set STRICT to encrypt")
	}
}

// policySelector warns about a selector that selects no workload: the
// policy then does nothing, which is rarely what was meant.
func (v *validator) policySelector(ns string, selector map[string]string, o Origin, ix *index) {
	if len(selector) == 0 {
		return
	}
	if len(ix.sel.selected(ns, selector, nil)) == 0 {
		v.warnf(o, "spec.selector", "selects no workload in namespace %s", ns)
	}
}

func (v *validator) authorizationPolicy(p *AuthorizationPolicy, ix *index) {
	if !slices.Contains(authzActions, p.Spec.Action) {
		v.errorf(p.Origin, "spec.action", "%s", oneOf("action", p.Spec.Action, authzActions))
	}
	v.policySelector(p.Namespace, p.Spec.Selector, p.Origin, ix)
	if p.Spec.Action == ActionAllow && len(p.Spec.Rules) == 0 {
		v.warnf(p.Origin, "spec.rules", "an ALLOW policy without rules allows nothing: every request to the workloads it selects is denied")
	}
	for i, r := range p.Spec.Rules {
		at := indexPath("spec.rules", i)
		for j, f := range r.From {
			from := indexPath(at+".from", j)
			v.patterns(p.Origin, from+".principals", f.Principals, ix, principalError)
			v.patterns(p.Origin, from+".notPrincipals", f.NotPrincipals, ix, principalError)
			v.patterns(p.Origin, from+".namespaces", f.Namespaces, ix, namespaceError)
			v.patterns(p.Origin, from+".notNamespaces", f.NotNamespaces, ix, namespaceError)
			if len(f.Principals)+len(f.NotPrincipals)+len(f.Namespaces)+len(f.NotNamespaces) == 0 {
				v.errorf(p.Origin, from, "empty: give principals, namespaces or their not- forms")
			}
		}
		for j, t := range r.To {
			to := indexPath(at+".to", j)
			v.methods(p.Origin, to+".methods", t.Methods)
			v.methods(p.Origin, to+".notMethods", t.NotMethods)
			v.patterns(p.Origin, to+".paths", t.Paths, ix, pathError)
			v.patterns(p.Origin, to+".notPaths", t.NotPaths, ix, pathError)
			if len(t.Methods)+len(t.NotMethods)+len(t.Paths)+len(t.NotPaths) == 0 {
				v.errorf(p.Origin, to, "empty: give methods, paths or their not- forms")
			}
		}
		for j, c := range r.When {
			when := indexPath(at+".when", j)
			if !headerKey.MatchString(c.Key) {
				v.errorf(p.Origin, when+".key", "%q is not supported; want request.headers[<name>]", c.Key)
			}
			v.patterns(p.Origin, when+".values", c.Values, ix, nil)
			v.patterns(p.Origin, when+".notValues", c.NotValues, ix, nil)
			if len(c.Values)+len(c.NotValues) == 0 {
				v.errorf(p.Origin, when, "give values or notValues")
			}
		}
	}
}

func (v *validator) methods(o Origin, path string, methods []string) {
	for i, m := range methods {
		if !httpMethod.MatchString(m) {
			v.errorf(o, indexPath(path, i), "%q is not an HTTP method (upper case, as GET or POST; gRPC calls are POST)", m)
		}
	}
}

// patterns checks match patterns: "*", "prefix*", "*suffix" or an exact
// value, then what check says about the value itself.
func (v *validator) patterns(o Origin, path string, values []string, ix *index, check func(string, *index) string) {
	for i, p := range values {
		at := indexPath(path, i)
		if msg := patternError(p); msg != "" {
			v.errorf(o, at, "%s", msg)
		} else if check != nil {
			if msg := check(p, ix); msg != "" {
				v.errorf(o, at, "%s", msg)
			}
		}
	}
}

func patternError(p string) string {
	switch inner := strings.TrimSuffix(strings.TrimPrefix(p, "*"), "*"); {
	case p == "":
		return "empty pattern; use \"*\" for any value"
	case p == "*":
		return ""
	case strings.HasPrefix(p, "*") && strings.HasSuffix(p, "*"):
		return fmt.Sprintf("%q: a pattern may start or end with *, not both", p)
	case strings.Contains(inner, "*"):
		return fmt.Sprintf("%q: * may only be the first or last character", p)
	}
	return ""
}

// TrimSPIFFE drops the spiffe:// scheme of a principal, giving Istio's form
// <trust-domain>/ns/<namespace>/sa/<service-account>.
func TrimSPIFFE(principal string) string { return strings.TrimPrefix(principal, "spiffe://") }

// principalError checks an exact principal's form and namespace; patterns
// are checked for the namespace they spell out in full, if any.
func principalError(p string, ix *index) string {
	if p == "*" {
		return ""
	}
	id := TrimSPIFFE(p)
	parts := strings.Split(id, "/")
	exact := !strings.Contains(id, "*")
	if exact && (len(parts) != 5 || parts[0] == "" || parts[1] != "ns" || parts[3] != "sa" || parts[4] == "") {
		return fmt.Sprintf("%q is not a SPIFFE id: want spiffe://<trust-domain>/ns/<namespace>/sa/<service-account> (or that without spiffe://), optionally with a leading or trailing *", p)
	}
	// Check the namespace where "ns/<namespace>/" is written in full.
	for i := 0; i+2 < len(parts); i++ {
		if parts[i] == "ns" && !strings.Contains(parts[i+1], "*") {
			if msg := namespaceError(parts[i+1], ix); msg != "" {
				return fmt.Sprintf("principal %q: %s", p, msg)
			}
		}
	}
	return ""
}

// namespaceError reports an exact namespace that nothing in the config is in.
func namespaceError(ns string, ix *index) string {
	if strings.Contains(ns, "*") || ns == MeshNamespace || len(ix.byNS[ns]) > 0 || len(ix.workloads[ns]) > 0 {
		return ""
	}
	known := make([]string, 0, len(ix.byNS))
	for n := range ix.byNS {
		known = append(known, n)
	}
	slices.Sort(known)
	return fmt.Sprintf("unknown namespace %q: no service or workload is in it (known: %s)", ns, strings.Join(known, ", "))
}

func pathError(p string, _ *index) string {
	if p != "*" && !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "*") {
		return fmt.Sprintf("%q: a path starts with / (gRPC: /package.Service/Method)", p)
	}
	return ""
}
