package translate

import (
	"fmt"
	"regexp"
	"strings"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/glassmesh/glassmesh/control/model"
)

// Names of the RBAC HTTP filters. grpc-go refuses two filters of one name,
// so the DENY and ALLOW halves are told apart.
const (
	authzDenyFilterName  = "glassmesh.authz.deny"
	authzAllowFilterName = "glassmesh.authz.allow"
)

// authzFilters are the RBAC HTTP filters enforcing the policies that apply
// to a workload, in Istio's order: a request matching any DENY rule is
// denied; then, when ALLOW policies apply, it must match one of their rules.
// An ALLOW policy without rules adds no rule, so it allows nothing. No
// policies, no filters. The same filters serve Envoy and grpc-go's xDS
// server (gRFC A41), so only matchers both understand are used.
func authzFilters(pols []*model.AuthorizationPolicy) []*hcmv3.HttpFilter {
	var deny, allow *rbacv3.RBAC
	for _, p := range pols {
		r := &allow
		action := rbacv3.RBAC_ALLOW
		if p.Spec.Action == model.ActionDeny {
			r, action = &deny, rbacv3.RBAC_DENY
		}
		if *r == nil {
			*r = &rbacv3.RBAC{Action: action, Policies: map[string]*rbacv3.Policy{}}
		}
		for i, rule := range p.Spec.Rules {
			(*r).Policies[fmt.Sprintf("%s/%s[%d]", p.Namespace, p.Name, i)] = authzPolicy(rule)
		}
	}
	var out []*hcmv3.HttpFilter
	for _, f := range []struct {
		name  string
		rules *rbacv3.RBAC
	}{{authzDenyFilterName, deny}, {authzAllowFilterName, allow}} {
		if f.rules == nil {
			continue
		}
		out = append(out, &hcmv3.HttpFilter{
			Name:       f.name,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&rbacfilterv3.RBAC{Rules: f.rules})},
		})
	}
	return out
}

// authzPolicy is one rule: any of its sources, and any of its operations,
// and every condition. An empty list matches anything.
func authzPolicy(rule model.AuthzRule) *rbacv3.Policy {
	var from []*rbacv3.Principal
	for _, s := range rule.From {
		from = append(from, sourcePrincipal(s))
	}
	var to []*rbacv3.Permission
	for _, o := range rule.To {
		to = append(to, operationPermission(o))
	}
	perms := []*rbacv3.Permission{orRules(to)}
	for _, c := range rule.When {
		perms = append(perms, conditionPermission(c))
	}
	return &rbacv3.Policy{
		Principals:  []*rbacv3.Principal{orIDs(from)},
		Permissions: []*rbacv3.Permission{andRules(perms)},
	}
}

// sourcePrincipal matches a source: one of its principals (SPIFFE ids) and
// one of its namespaces, and none of the Not lists.
func sourcePrincipal(s model.AuthzSource) *rbacv3.Principal {
	var all []*rbacv3.Principal
	ids := func(patterns []string, f func(string) *rbacv3.Principal) *rbacv3.Principal {
		var out []*rbacv3.Principal
		for _, p := range patterns {
			out = append(out, f(p))
		}
		return orIDs(out)
	}
	if len(s.Principals) > 0 {
		all = append(all, ids(s.Principals, principalID))
	}
	if len(s.NotPrincipals) > 0 {
		all = append(all, notID(ids(s.NotPrincipals, principalID)))
	}
	if len(s.Namespaces) > 0 {
		all = append(all, ids(s.Namespaces, namespaceID))
	}
	if len(s.NotNamespaces) > 0 {
		all = append(all, notID(ids(s.NotNamespaces, namespaceID)))
	}
	return andIDs(all)
}

// principalID matches a peer certificate's URI SAN. Principals are written
// with or without spiffe://; "*" is any authenticated peer.
func principalID(p string) *rbacv3.Principal {
	var m *matcherv3.StringMatcher
	id := model.TrimSPIFFE(p)
	switch {
	case id == "*":
		// No name: any peer with a verified certificate.
	case strings.HasSuffix(id, "*"):
		m = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://" + strings.TrimSuffix(id, "*")}}
	case strings.HasPrefix(id, "*"):
		m = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: strings.TrimPrefix(id, "*")}}
	default:
		m = &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "spiffe://" + id}}
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: m}}}
}

// namespaceID matches peers whose SPIFFE id is in a namespace, in any trust
// domain, as Istio's namespaces do.
func namespaceID(ns string) *rbacv3.Principal {
	if ns == "*" {
		return principalID("*")
	}
	re := regexp.QuoteMeta(strings.Trim(ns, "*"))
	switch {
	case strings.HasSuffix(ns, "*"):
		re += "[^/]*"
	case strings.HasPrefix(ns, "*"):
		re = "[^/]*" + re
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{
		PrincipalName: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{
			Regex: "spiffe://[^/]+/ns/" + re + "/sa/[^/]+",
		}}},
	}}}
}

// operationPermission matches an operation: one of its methods and one of
// its paths, and none of the Not lists. grpc-go sees every call as POST.
func operationPermission(o model.AuthzOperation) *rbacv3.Permission {
	var all []*rbacv3.Permission
	list := func(patterns []string, f func(string) *rbacv3.Permission) *rbacv3.Permission {
		var out []*rbacv3.Permission
		for _, p := range patterns {
			out = append(out, f(p))
		}
		return orRules(out)
	}
	method := func(m string) *rbacv3.Permission { return headerPermission(":method", m) }
	path := func(p string) *rbacv3.Permission {
		if p == "*" {
			return anyPermission()
		}
		return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
			Rule: &matcherv3.PathMatcher_Path{Path: patternMatcher(p)},
		}}}
	}
	if len(o.Methods) > 0 {
		all = append(all, list(o.Methods, method))
	}
	if len(o.NotMethods) > 0 {
		all = append(all, notRule(list(o.NotMethods, method)))
	}
	if len(o.Paths) > 0 {
		all = append(all, list(o.Paths, path))
	}
	if len(o.NotPaths) > 0 {
		all = append(all, notRule(list(o.NotPaths, path)))
	}
	return andRules(all)
}

// conditionPermission matches a when condition on a request header; the
// validator allows no other key.
func conditionPermission(c model.AuthzCondition) *rbacv3.Permission {
	name := strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(c.Key, "request.headers["), "]"))
	var all []*rbacv3.Permission
	list := func(values []string) *rbacv3.Permission {
		var out []*rbacv3.Permission
		for _, v := range values {
			out = append(out, headerPermission(name, v))
		}
		return orRules(out)
	}
	if len(c.Values) > 0 {
		all = append(all, list(c.Values))
	}
	if len(c.NotValues) > 0 {
		all = append(all, notRule(list(c.NotValues)))
	}
	return andRules(all)
}

// headerPermission matches a header against a pattern; "*" is "present".
func headerPermission(name, pattern string) *rbacv3.Permission {
	h := &routev3.HeaderMatcher{Name: name}
	if pattern == "*" {
		h.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
	} else {
		h.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: patternMatcher(pattern)}
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: h}}
}

// patternMatcher reads Istio's patterns: exact, prefix* or *suffix.
func patternMatcher(p string) *matcherv3.StringMatcher {
	switch {
	case strings.HasSuffix(p, "*"):
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: strings.TrimSuffix(p, "*")}}
	case strings.HasPrefix(p, "*"):
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: strings.TrimPrefix(p, "*")}}
	}
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: p}}
}

func anyPrincipal() *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
}

func anyPermission() *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
}

// orIDs matches any of ids; none matches anything (an absent list).
func orIDs(ids []*rbacv3.Principal) *rbacv3.Principal {
	switch len(ids) {
	case 0:
		return anyPrincipal()
	case 1:
		return ids[0]
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: ids}}}
}

// andIDs matches all of ids; none matches anything.
func andIDs(ids []*rbacv3.Principal) *rbacv3.Principal {
	switch len(ids) {
	case 0:
		return anyPrincipal()
	case 1:
		return ids[0]
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: ids}}}
}

func notID(id *rbacv3.Principal) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: id}}
}

// orRules matches any of rules; none matches anything.
func orRules(rules []*rbacv3.Permission) *rbacv3.Permission {
	switch len(rules) {
	case 0:
		return anyPermission()
	case 1:
		return rules[0]
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: rules}}}
}

// andRules matches all of rules; none matches anything.
func andRules(rules []*rbacv3.Permission) *rbacv3.Permission {
	switch len(rules) {
	case 0:
		return anyPermission()
	case 1:
		return rules[0]
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: rules}}}
}

func notRule(r *rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: r}}
}
