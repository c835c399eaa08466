package topology

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestEncoderMatchesEncodingJSON(t *testing.T) {
	g := newFixtureGraph(t, fixtureNow)
	var graphs []*Cytoscape
	for _, q := range []string{"graphType=workload", "graphType=app&boxBy=namespace,app", "graphType=service",
		"injectServiceNodes=true&boxBy=cluster", "appenders=", "graphType=versionedApp&responseTime=avg&namespaces=bookinfo"} {
		graphs = append(graphs, buildFixture(t, g, q, pathMemory))
	}
	odd := "<a&b>\"\\\n\t\u2028é\x01"
	graphs = append(graphs, &Cytoscape{GraphType: odd, Elements: Elements{
		Nodes: []*NodeWrapper{{Data: &NodeData{ID: odd, Parent: "p", NodeType: "app", Labels: map[string]string{odd: odd, "a": "b"},
			DestServices:    []ServiceName{{"c", "n", odd}},
			Traffic:         []ProtocolTraffic{{Protocol: "http"}, {Rates: map[string]string{"x": "1"}}},
			HealthData:      &HealthData{Requests: HealthRequests{Inbound: map[string]map[string]float64{"http": {"200": 1e-7, "500": 1e21, "0": 0.1, "-": 3}, "grpc": nil}}},
			HasHealthConfig: map[string]string{"k": "v"}, IsBox: "app", IsDead: true, IsIdle: true, IsInaccessible: true,
			IsOutOfMesh: true, IsOutside: true, IsRoot: true, IsServiceEntry: &SEInfo{Location: "MESH_EXTERNAL"}, HealthStatus: "x", DataSource: odd}},
			{Data: &NodeData{IsServiceEntry: &SEInfo{Hosts: []string{"a", odd}}}}, {Data: nil}},
		Edges: []*EdgeWrapper{{Data: &EdgeData{ID: "e", DestPrincipal: odd, IsMTLS: "1", ResponseTime: "2", SourcePrincipal: "s", Throughput: "3",
			Traffic: ProtocolTraffic{Responses: Responses{"200": {Flags: map[string]string{"-": "1"}}, "500": nil, "0": {Hosts: map[string]string{"h": "1"}}, "1": {}}}}},
			{Data: nil}},
	}})
	graphs = append(graphs, &Cytoscape{})
	for i, c := range graphs {
		want, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.appendJSON(nil); !bytes.Equal(got, want) {
			t.Errorf("graph %d:\n got %s\nwant %s", i, got, want)
		}
	}
}
