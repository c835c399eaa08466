package translate

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/glassmesh/glassmesh/control/model"
)

// randomMesh is a mesh that random edits change one object at a time,
// keeping every other object the same value, as the config sources do.
type randomMesh struct {
	services  map[string]*model.Service
	workloads map[string]*model.Workload
	routes    map[string]*model.TrafficRoute
	peerAuths map[string]*model.PeerAuthentication
}

func (r *randomMesh) objects() model.Objects {
	var o model.Objects
	for _, k := range sortedKeys(r.services) {
		o.Services = append(o.Services, r.services[k])
	}
	for _, k := range sortedKeys(r.workloads) {
		o.Workloads = append(o.Workloads, r.workloads[k])
	}
	for _, k := range sortedKeys(r.routes) {
		o.Routes = append(o.Routes, r.routes[k])
	}
	for _, k := range sortedKeys(r.peerAuths) {
		o.PeerAuths = append(o.PeerAuths, r.peerAuths[k])
	}
	return o
}

var namespaces = []string{"default", "shop"}

func (r *randomMesh) edit(rng *rand.Rand) string {
	ns := namespaces[rng.IntN(len(namespaces))]
	i := rng.IntN(6)
	svc := fmt.Sprintf("svc-%d", i)
	key := ns + "/" + svc
	switch rng.IntN(8) {
	case 0: // a service comes or goes, or changes its ports
		if _, ok := r.services[key]; ok && rng.IntN(3) == 0 {
			delete(r.services, key)
			delete(r.routes, key)
			for v := range 3 {
				delete(r.workloads, fmt.Sprintf("%s-v%d", key, v))
			}
			return "delete service " + key
		}
		ports := []model.ServicePort{{Name: "grpc", Port: 9080, Protocol: []string{model.ProtocolGRPC, model.ProtocolHTTP}[rng.IntN(2)]},
			{Name: "tcp", Port: 9090 + uint32(rng.IntN(2)), Protocol: model.ProtocolTCP}}
		r.services[key] = &model.Service{Meta: model.Meta{Name: svc, Namespace: ns},
			Spec: model.ServiceSpec{Ports: ports, Selector: map[string]string{"app": svc}}}
		return "set service " + key
	case 1, 2: // a workload comes, goes or moves
		if r.services[key] == nil {
			return "nothing"
		}
		w := fmt.Sprintf("%s-v%d", svc, 1+rng.IntN(2))
		wkey := ns + "/" + w
		if _, ok := r.workloads[wkey]; ok && rng.IntN(3) == 0 {
			delete(r.workloads, wkey)
			return "delete workload " + wkey
		}
		var eps []model.Endpoint
		for j := range 1 + rng.IntN(3) {
			eps = append(eps, model.Endpoint{Address: fmt.Sprintf("10.0.%d.%d", i, 1+rng.IntN(4)+j),
				Ports: map[string]uint32{"grpc": 8000 + uint32(rng.IntN(2)), "tcp": 9000}})
		}
		r.workloads[wkey] = &model.Workload{Meta: model.Meta{Name: w, Namespace: ns,
			Labels: map[string]string{"app": svc, "version": w[len(w)-2:]}},
			Spec: model.WorkloadSpec{ServiceAccount: []string{"default", svc}[rng.IntN(2)], Endpoints: eps}}
		return "set workload " + wkey
	case 3, 4, 5: // a route's weights
		if r.services[key] == nil {
			return "nothing"
		}
		if _, ok := r.routes[key]; ok && rng.IntN(4) == 0 {
			delete(r.routes, key)
			return "delete route " + key
		}
		w := uint32(rng.IntN(101))
		rule := model.Rule{Destinations: []model.Destination{{Subset: "v1", Weight: w}, {Subset: "v2", Weight: 100 - w}}}
		if rng.IntN(3) == 0 {
			rule.Fault = &model.Fault{Abort: &model.FaultAbort{GRPCStatus: "UNAVAILABLE", Percent: 10}}
		}
		r.routes[key] = &model.TrafficRoute{Meta: model.Meta{Name: svc, Namespace: ns}, Spec: model.TrafficRouteSpec{
			Service: svc,
			Subsets: []model.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}, {Name: "v2", Labels: map[string]string{"version": "v2"}}},
			Rules:   []model.Rule{rule},
		}}
		return "set route " + key
	default: // mutual TLS in a namespace
		if _, ok := r.peerAuths[ns]; ok && rng.IntN(2) == 0 {
			delete(r.peerAuths, ns)
			return "delete peer authentication " + ns
		}
		r.peerAuths[ns] = &model.PeerAuthentication{Meta: model.Meta{Name: "default", Namespace: ns},
			Spec: model.PeerAuthenticationSpec{MTLS: []string{model.MTLSStrict, model.MTLSPermissive}[rng.IntN(2)]}}
		return "set peer authentication " + ns
	}
}

// TestTranslateWithEqualsAFullTranslation: after every step of random edit
// sequences, the translation that reuses the last one's results gives
// exactly what translating the whole mesh afresh gives.
func TestTranslateWithEqualsAFullTranslation(t *testing.T) {
	for seed := range uint64(5) {
		rng := rand.New(rand.NewPCG(seed, 42))
		r := &randomMesh{services: map[string]*model.Service{}, workloads: map[string]*model.Workload{},
			routes: map[string]*model.TrafficRoute{}, peerAuths: map[string]*model.PeerAuthentication{}}
		c := &Cache{}
		reused, valid := 0, 0
		var history []string
		for range 120 {
			history = append(history, r.edit(rng))
			m, errs, _ := model.Validate(r.objects())
			if len(errs) > 0 {
				continue // the sources never serve an invalid object
			}
			valid++
			got, err := TranslateWith(m, Options{}, c)
			if err != nil {
				t.Fatal(err)
			}
			want, err := Translate(m, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if err := sameSnapshots(got, want); err != nil {
				t.Fatalf("seed %d after %v: %v", seed, history[max(0, len(history)-5):], err)
			}
			if !slices.Equal(got.Warnings, want.Warnings) {
				t.Fatalf("seed %d: warnings\n%q\nwant\n%q", seed, got.Warnings, want.Warnings)
			}
			for _, p := range c.ports {
				if len(p.shared) > 0 && p.in != nil {
					reused++
				}
			}
		}
		if valid < 50 || reused == 0 {
			t.Fatalf("seed %d: %d valid meshes, %d reuses: the test exercises too little", seed, valid, reused)
		}
	}
}

// sameSnapshots compares two snapshots resource by resource, by their
// deterministic encodings.
func sameSnapshots(got, want *Snapshot) error {
	if err := sameResources("byName", got.ByName, want.ByName); err != nil {
		return err
	}
	if !slices.Equal(sortedKeys(got.Sidecars), sortedKeys(want.Sidecars)) {
		return fmt.Errorf("sidecar views %v, want %v", sortedKeys(got.Sidecars), sortedKeys(want.Sidecars))
	}
	for k := range want.Sidecars {
		if err := sameResources("sidecar "+k, got.Sidecars[k], want.Sidecars[k]); err != nil {
			return err
		}
	}
	return nil
}

func sameResources(where string, got, want Resources) error {
	det := proto.MarshalOptions{Deterministic: true}
	if !slices.Equal(sortedKeys(got), sortedKeys(want)) {
		return fmt.Errorf("%s: types %v, want %v", where, sortedKeys(got), sortedKeys(want))
	}
	for typeURL, byName := range want {
		if !slices.Equal(sortedKeys(got[typeURL]), sortedKeys(byName)) {
			return fmt.Errorf("%s: %s names %v, want %v", where, typeURL, sortedKeys(got[typeURL]), sortedKeys(byName))
		}
		for name, w := range byName {
			a, _ := det.Marshal(got[typeURL][name])
			b, _ := det.Marshal(w)
			if string(a) != string(b) {
				return fmt.Errorf("%s: %s %q differs", where, typeURL, name)
			}
		}
	}
	return nil
}
