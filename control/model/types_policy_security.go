package model

// MeshNamespace is the namespace whose selector-less PeerAuthentication sets
// the mode of the whole mesh, as istio-system does in Istio.
const MeshNamespace = "glassmesh-system"

// Mutual TLS modes of PeerAuthentication.
const (
	// MTLSStrict: servers accept only mutual TLS; clients use it to them.
	MTLSStrict = "STRICT"
	// MTLSPermissive: Envoy servers accept both; proxyless gRPC servers, which
	// cannot tell TLS from plaintext on one port, accept plaintext. Clients
	// send plaintext, so PERMISSIVE is the step before STRICT.
	MTLSPermissive = "PERMISSIVE"
	// MTLSDisable: plaintext only.
	MTLSDisable = "DISABLE"
)

// DefaultMTLSMode is the mode of workloads no PeerAuthentication selects.
const DefaultMTLSMode = MTLSPermissive

// PeerAuthentication sets the mutual TLS mode of the workloads it selects:
// with a selector, those of its namespace whose labels match; without one,
// every workload of its namespace, or of the mesh in MeshNamespace. The most
// specific one wins: selector, then namespace, then mesh.
type PeerAuthentication struct {
	Meta   `yaml:"metadata" json:"metadata"`
	Spec   PeerAuthenticationSpec `yaml:"spec" json:"spec"`
	Origin Origin                 `yaml:"-" json:"-"`
}

// PeerAuthenticationSpec is the spec of a PeerAuthentication.
type PeerAuthenticationSpec struct {
	Selector map[string]string `yaml:"selector,omitempty" json:"selector,omitempty"`
	MTLS     string            `yaml:"mtls" json:"mtls"` // STRICT | PERMISSIVE | DISABLE
}

// Actions of an AuthorizationPolicy.
const (
	ActionAllow = "ALLOW"
	ActionDeny  = "DENY"
)

// AuthorizationPolicy allows or denies requests to the workloads it selects
// (with no selector: every workload of its namespace, or of the mesh in
// MeshNamespace). As in Istio: a request matching any DENY policy is denied;
// otherwise, when ALLOW policies select the workload, it must match one of
// them; with none, it is allowed. An ALLOW policy without rules allows
// nothing.
type AuthorizationPolicy struct {
	Meta   `yaml:"metadata" json:"metadata"`
	Spec   AuthorizationPolicySpec `yaml:"spec" json:"spec"`
	Origin Origin                  `yaml:"-" json:"-"`
}

// AuthorizationPolicySpec is the spec of an AuthorizationPolicy.
type AuthorizationPolicySpec struct {
	Selector map[string]string `yaml:"selector,omitempty" json:"selector,omitempty"`
	Action   string            `yaml:"action,omitempty" json:"action,omitempty"` // ALLOW (default) | DENY
	Rules    []AuthzRule       `yaml:"rules,omitempty" json:"rules,omitempty"`
}

// AuthzRule matches a request when one of its sources, one of its
// operations and every condition match; an empty list matches anything.
type AuthzRule struct {
	From []AuthzSource    `yaml:"from,omitempty" json:"from,omitempty"`
	To   []AuthzOperation `yaml:"to,omitempty" json:"to,omitempty"`
	When []AuthzCondition `yaml:"when,omitempty" json:"when,omitempty"`
}

// AuthzSource matches the caller. Principals are SPIFFE ids
// ("spiffe://cluster.local/ns/default/sa/productpage", or Istio's form
// without "spiffe://"); principals and namespaces may start or end with one
// "*", or be "*" (any authenticated caller). Every given field must match.
type AuthzSource struct {
	Principals    []string `yaml:"principals,omitempty" json:"principals,omitempty"`
	NotPrincipals []string `yaml:"notPrincipals,omitempty" json:"notPrincipals,omitempty"`
	Namespaces    []string `yaml:"namespaces,omitempty" json:"namespaces,omitempty"`
	NotNamespaces []string `yaml:"notNamespaces,omitempty" json:"notNamespaces,omitempty"`
}

// AuthzOperation matches the request. Paths may start or end with one "*"
// (gRPC paths are "/package.Service/Method"); methods are HTTP methods (gRPC
// calls are POST). Every given field must match.
type AuthzOperation struct {
	Methods    []string `yaml:"methods,omitempty" json:"methods,omitempty"`
	NotMethods []string `yaml:"notMethods,omitempty" json:"notMethods,omitempty"`
	Paths      []string `yaml:"paths,omitempty" json:"paths,omitempty"`
	NotPaths   []string `yaml:"notPaths,omitempty" json:"notPaths,omitempty"`
}

// AuthzCondition matches one request attribute; the only key today is
// request.headers[<name>]. Values may start or end with one "*".
type AuthzCondition struct {
	Key       string   `yaml:"key" json:"key"`
	Values    []string `yaml:"values,omitempty" json:"values,omitempty"`
	NotValues []string `yaml:"notValues,omitempty" json:"notValues,omitempty"`
}

// policySelects reports whether a policy with this selector in namespace ns
// applies to the workload: its namespace (or the mesh, in MeshNamespace,
// when the selector is empty) and its labels.
func policySelects(ns string, selector map[string]string, w *Workload) bool {
	if ns != w.Namespace && (ns != MeshNamespace || len(selector) > 0) {
		return false
	}
	return matches(w.Labels, selector)
}

// MTLSMode is the mutual TLS mode of a workload's servers and the
// PeerAuthentication that set it (nil for the default).
func (m *Mesh) MTLSMode(w *Workload) (string, *PeerAuthentication) {
	var best *PeerAuthentication
	rank := func(p *PeerAuthentication) int {
		switch {
		case len(p.Spec.Selector) > 0:
			return 3
		case p.Namespace == w.Namespace:
			return 2
		default:
			return 1
		}
	}
	for _, p := range m.PeerAuthentications {
		if policySelects(p.Namespace, p.Spec.Selector, w) && (best == nil || rank(p) > rank(best)) {
			best = p
		}
	}
	if best == nil {
		return DefaultMTLSMode, nil
	}
	return best.Spec.MTLS, best
}

// AuthorizationPolicies are the policies that apply to a workload, in
// namespace/name order.
func (m *Mesh) AuthorizationPolicies(w *Workload) []*AuthorizationPolicy {
	var out []*AuthorizationPolicy
	for _, p := range m.AuthzPolicies {
		if policySelects(p.Namespace, p.Spec.Selector, w) {
			out = append(out, p)
		}
	}
	return out
}
