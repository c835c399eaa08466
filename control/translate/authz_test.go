package translate

import (
	"regexp"
	"strings"
	"testing"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbacfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/glassmesh/glassmesh/control/model"
)

// call is what an RBAC engine sees of a request.
type call struct {
	san     string // peer URI SAN; "" over plaintext
	method  string
	path    string
	headers map[string]string
}

// The evaluator below reads the subset of RBAC authzFilters emits, with the
// semantics Envoy documents and gRFC A41 repeats, so the tests can say which
// requests a policy set lets through.
func strMatch(m *matcherv3.StringMatcher, s string) bool {
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		return s == p.Exact
	case *matcherv3.StringMatcher_Prefix:
		return strings.HasPrefix(s, p.Prefix)
	case *matcherv3.StringMatcher_Suffix:
		return strings.HasSuffix(s, p.Suffix)
	case *matcherv3.StringMatcher_SafeRegex:
		return regexp.MustCompile("^(?:" + p.SafeRegex.Regex + ")$").MatchString(s)
	}
	panic("unexpected matcher")
}

func principalMatches(t *testing.T, p *rbacv3.Principal, c call) bool {
	switch id := p.GetIdentifier().(type) {
	case *rbacv3.Principal_Any:
		return true
	case *rbacv3.Principal_Authenticated_:
		return c.san != "" && (id.Authenticated.PrincipalName == nil || strMatch(id.Authenticated.PrincipalName, c.san))
	case *rbacv3.Principal_OrIds:
		for _, x := range id.OrIds.Ids {
			if principalMatches(t, x, c) {
				return true
			}
		}
		return false
	case *rbacv3.Principal_AndIds:
		for _, x := range id.AndIds.Ids {
			if !principalMatches(t, x, c) {
				return false
			}
		}
		return true
	case *rbacv3.Principal_NotId:
		return !principalMatches(t, id.NotId, c)
	}
	t.Fatalf("unexpected principal %v", p)
	return false
}

func permissionMatches(t *testing.T, p *rbacv3.Permission, c call) bool {
	switch r := p.GetRule().(type) {
	case *rbacv3.Permission_Any:
		return true
	case *rbacv3.Permission_UrlPath:
		return strMatch(r.UrlPath.GetPath(), c.path)
	case *rbacv3.Permission_Header:
		v, ok := c.headers[r.Header.Name]
		if r.Header.Name == ":method" {
			v, ok = c.method, true
		}
		if r.Header.GetPresentMatch() {
			return ok
		}
		return ok && strMatch(r.Header.GetStringMatch(), v)
	case *rbacv3.Permission_OrRules:
		for _, x := range r.OrRules.Rules {
			if permissionMatches(t, x, c) {
				return true
			}
		}
		return false
	case *rbacv3.Permission_AndRules:
		for _, x := range r.AndRules.Rules {
			if !permissionMatches(t, x, c) {
				return false
			}
		}
		return true
	case *rbacv3.Permission_NotRule:
		return !permissionMatches(t, r.NotRule, c)
	}
	t.Fatalf("unexpected permission %v", p)
	return false
}

// allowed runs a request through the filters in order, as the HTTP filter
// chain does.
func allowed(t *testing.T, pols []*model.AuthorizationPolicy, c call) bool {
	for _, f := range authzFilters(pols) {
		if err := Validate(f.GetTypedConfig()); err != nil {
			t.Fatalf("filter %s does not validate: %v", f.Name, err)
		}
		cfg := &rbacfilterv3.RBAC{}
		if err := f.GetTypedConfig().UnmarshalTo(cfg); err != nil {
			t.Fatal(err)
		}
		matched := false
		for _, p := range cfg.Rules.Policies {
			pm, rm := false, false
			for _, x := range p.Principals {
				pm = pm || principalMatches(t, x, c)
			}
			for _, x := range p.Permissions {
				rm = rm || permissionMatches(t, x, c)
			}
			matched = matched || pm && rm
		}
		if (cfg.Rules.Action == rbacv3.RBAC_DENY) == matched {
			return false
		}
	}
	return true
}

func authzPolicyOf(name, action string, rules ...model.AuthzRule) *model.AuthorizationPolicy {
	return &model.AuthorizationPolicy{Meta: meta("default", name, nil), Spec: model.AuthorizationPolicySpec{Action: action, Rules: rules}}
}

func TestAuthzFilters(t *testing.T) {
	const (
		productpage = "spiffe://cluster.local/ns/default/sa/productpage"
		ratings     = "spiffe://cluster.local/ns/default/sa/ratings"
		shop        = "spiffe://cluster.local/ns/shop/sa/cart"
	)
	get := call{method: "POST", path: "/reviews.Reviews/Get"}
	as := func(san string, c call) call { c.san = san; return c }

	t.Run("no policy lets everything through and adds no filter", func(t *testing.T) {
		if f := authzFilters(nil); len(f) != 0 {
			t.Fatalf("filters = %v", f)
		}
	})
	t.Run("ALLOW by principal lets only that peer in, never plaintext", func(t *testing.T) {
		pols := []*model.AuthorizationPolicy{authzPolicyOf("a", model.ActionAllow, model.AuthzRule{
			From: []model.AuthzSource{{Principals: []string{"cluster.local/ns/default/sa/productpage"}}},
			To:   []model.AuthzOperation{{Methods: []string{"POST"}, Paths: []string{"/reviews.Reviews/*"}}},
		})}
		for _, tc := range []struct {
			c    call
			want bool
		}{
			{as(productpage, get), true},
			{as(ratings, get), false},
			{get, false},
			{as(productpage, call{method: "POST", path: "/other.Svc/Get"}), false},
		} {
			if got := allowed(t, pols, tc.c); got != tc.want {
				t.Errorf("%+v: allowed = %v, want %v", tc.c, got, tc.want)
			}
		}
	})
	t.Run("DENY wins over ALLOW; namespaces and header conditions", func(t *testing.T) {
		pols := []*model.AuthorizationPolicy{
			authzPolicyOf("allow-default", model.ActionAllow, model.AuthzRule{From: []model.AuthzSource{{Namespaces: []string{"default"}}}}),
			authzPolicyOf("deny-ratings", model.ActionDeny, model.AuthzRule{
				From: []model.AuthzSource{{Principals: []string{"*/sa/ratings"}}},
				When: []model.AuthzCondition{{Key: "request.headers[X-Debug]", Values: []string{"*"}}},
			}),
		}
		debug := as(ratings, get)
		debug.headers = map[string]string{"x-debug": "1"}
		for _, tc := range []struct {
			c    call
			want bool
		}{
			{as(productpage, get), true},
			{as(ratings, get), true},
			{debug, false},
			{as(shop, get), false},
		} {
			if got := allowed(t, pols, tc.c); got != tc.want {
				t.Errorf("%+v: allowed = %v, want %v", tc.c, got, tc.want)
			}
		}
		if f := authzFilters(pols); len(f) != 2 || f[0].Name != authzDenyFilterName || f[1].Name != authzAllowFilterName {
			t.Errorf("filters = %v, want deny then allow", f)
		}
	})
	t.Run("an ALLOW policy without rules allows nothing; notPrincipals exclude", func(t *testing.T) {
		if allowed(t, []*model.AuthorizationPolicy{authzPolicyOf("none", model.ActionAllow)}, as(productpage, get)) {
			t.Error("allow-nothing let a request through")
		}
		pols := []*model.AuthorizationPolicy{authzPolicyOf("not", model.ActionAllow, model.AuthzRule{
			From: []model.AuthzSource{{Principals: []string{"*"}, NotPrincipals: []string{ratings}}},
		})}
		if !allowed(t, pols, as(productpage, get)) || allowed(t, pols, as(ratings, get)) || allowed(t, pols, get) {
			t.Error("notPrincipals: want productpage in, ratings and plaintext out")
		}
	})
}
