package topology

import (
	"slices"
	"testing"
)

func TestBoxesFollowKialisRules(t *testing.T) {
	nodes := func() []*node {
		var out []*node
		for _, n := range []NodeData{
			{ID: "a1", NodeType: NodeTypeApp, Cluster: "east", Namespace: "shop", App: "cart", Version: "v1"},
			{ID: "a2", NodeType: NodeTypeApp, Cluster: "east", Namespace: "shop", App: "cart", Version: "v2"},
			{ID: "b", NodeType: NodeTypeApp, Cluster: "east", Namespace: "shop", App: "pay", Version: "v1"},
			{ID: "c", NodeType: NodeTypeService, Cluster: "east", Namespace: "bank", Service: "ledger"},
			{ID: "d", NodeType: NodeTypeWorkload, Cluster: "east", Namespace: "bank", Workload: "audit"},
			{ID: "e", NodeType: NodeTypeWorkload, Cluster: "west", Namespace: "bank", Workload: "mirror"},
			{ID: "f", NodeType: NodeTypeWorkload, Cluster: "west", Namespace: "bank", Workload: "backup"},
			{ID: "u", NodeType: NodeTypeUnknown, Cluster: "unknown", Namespace: "unknown", Workload: "unknown", App: "unknown"},
		} {
			out = append(out, &node{data: n})
		}
		return out
	}
	for _, tc := range []struct {
		graphType, boxBy string
		want             []string // box kind:cluster:namespace:app → members
	}{
		{GraphTypeWorkload, "", nil},
		{GraphTypeVersionedApp, "", []string{"app:east:shop:cart=a1,a2"}},
		{GraphTypeWorkload, "app", []string{"app:east:shop:cart=a1,a2"}},
		{GraphTypeWorkload, "namespace", []string{"namespace:east:bank:=c,d", "namespace:east:shop:=a1,a2,b", "namespace:west:bank:=e,f"}},
		// west's cluster would hold one namespace box only: like any box
		// of one member, Kiali does not draw it.
		{GraphTypeVersionedApp, "namespace,cluster", []string{"app:east:shop:cart=a1,a2", "cluster:east::=bank@east,shop@east",
			"namespace:east:bank:=c,d", "namespace:east:shop:=b,cart", "namespace:west:bank:=e,f"}},
	} {
		t.Run(tc.graphType+" boxed by "+tc.boxBy, func(t *testing.T) {
			o := DefaultOptions()
			o.GraphType, o.BoxBy = tc.graphType, splitList(tc.boxBy)
			ns := nodes()
			boxes := newBuilder(&o).boxes(ns)
			all := append(ns, boxes...)
			name := map[string]string{}
			for _, n := range all {
				d := &n.data
				name[d.ID] = d.ID
				switch d.IsBox {
				case "app":
					name[d.ID] = d.App
				case "namespace":
					name[d.ID] = d.Namespace + "@" + d.Cluster
				}
			}
			var got []string
			for _, b := range boxes {
				var members []string
				for _, n := range all {
					if n.data.Parent == b.data.ID {
						members = append(members, name[n.data.ID])
					}
				}
				slices.Sort(members)
				d := &b.data
				got = append(got, d.IsBox+":"+d.Cluster+":"+d.Namespace+":"+d.App+"="+join(members))
			}
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("boxes\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func join(xs []string) string {
	out := ""
	for i, x := range xs {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}
