package naming

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNodeIDRoundTrip(t *testing.T) {
	id := NodeID("10.0.0.7", "reviews-v1-5d8f9-abcde", "shop")
	if id != "sidecar~10.0.0.7~reviews-v1-5d8f9-abcde.shop~shop.svc.cluster.local" {
		t.Fatalf("NodeID = %q", id)
	}
	p, ok := ParseNodeID(id)
	if !ok || p != (NodeIDParts{IP: "10.0.0.7", Instance: "reviews-v1-5d8f9-abcde", Namespace: "shop"}) {
		t.Errorf("ParseNodeID = %+v %v", p, ok)
	}
	for _, bad := range []string{"", "productpage-0", "sidecar~1~x.ns~other.svc.cluster.local", "sidecar~1~.ns~ns.svc.cluster.local", "sidecar~1~x.ns~ns.svc"} {
		if p, ok := ParseNodeID(bad); ok {
			t.Errorf("ParseNodeID(%q) = %+v, want false", bad, p)
		}
	}
}

func TestPodWorkload(t *testing.T) {
	hash := map[string]string{"pod-template-hash": "5d8f9"}
	for _, c := range []struct {
		name, generateName string
		labels             map[string]string
		kind, owner, want  string
	}{
		{"reviews-v1-5d8f9-abcde", "reviews-v1-5d8f9-", hash, "ReplicaSet", "reviews-v1-5d8f9", "reviews-v1"},
		{"db-0", "db-", nil, "StatefulSet", "db", "db"},
		{"lonely", "", nil, "", "", "lonely"},
		{"", "job-", nil, "", "", "job"},
	} {
		if got := PodWorkload(c.name, c.generateName, c.labels, c.kind, c.owner); got != c.want {
			t.Errorf("PodWorkload(%q, %q, %s %s) = %q, want %q", c.name, c.generateName, c.kind, c.owner, got, c.want)
		}
	}
	if !IsControllerLabel("pod-template-hash") || IsControllerLabel("app") {
		t.Error("IsControllerLabel")
	}
	if got := SPIFFEID("cluster.local", "shop", "reviews"); got != "spiffe://cluster.local/ns/shop/sa/reviews" {
		t.Errorf("SPIFFEID = %q", got)
	}
}

// The package is a leaf: the standard library only, so whatever imports it
// (an application's interceptor) links nothing else.
func TestImportsOnlyTheStandardLibrary(t *testing.T) {
	files, _ := filepath.Glob("*.go")
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		parsed, err := parser.ParseFile(token.NewFileSet(), f, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range parsed.Imports {
			if path := strings.Trim(imp.Path.Value, `"`); strings.Contains(strings.SplitN(path, "/", 2)[0], ".") {
				t.Errorf("%s imports %s", f, path)
			}
		}
	}
}
