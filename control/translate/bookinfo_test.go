package translate

import (
	"time"

	"github.com/glassmesh/glassmesh/control/model"
)

// Test fixtures: a bookinfo-like mesh of proxyless gRPC services plus one
// TCP service, built in code so these tests do not depend on the parser.

func meta(ns, name string, labels map[string]string) model.Meta {
	return model.Meta{Namespace: ns, Name: name, Labels: labels}
}

func grpcService(ns, name string, port uint32) *model.Service {
	return &model.Service{
		Meta: meta(ns, name, nil),
		Spec: model.ServiceSpec{
			Ports:    []model.ServicePort{{Name: "grpc", Port: port, Protocol: model.ProtocolGRPC}},
			Selector: map[string]string{"app": name},
		},
	}
}

func workload(ns, app, version, addr string, ports map[string]uint32) *model.Workload {
	return &model.Workload{
		Meta: meta(ns, app+"-"+version, map[string]string{"app": app, "version": version}),
		Spec: model.WorkloadSpec{
			ServiceAccount: app,
			Endpoints:      []model.Endpoint{{Address: addr, Ports: ports}},
		},
	}
}

func dur(d time.Duration) model.Duration { return model.Duration{Duration: d} }

// reviewsRoute sends testers' calls to v2 and splits the rest 80/20 between
// v1 and v2 with a timeout, retries and injected faults.
func reviewsRoute() *model.TrafficRoute {
	return &model.TrafficRoute{
		Meta: meta("default", "reviews", nil),
		Spec: model.TrafficRouteSpec{
			Service: "reviews",
			Subsets: []model.Subset{
				{Name: "v1", Labels: map[string]string{"version": "v1"}},
				{Name: "v2", Labels: map[string]string{"version": "v2"}},
				{Name: "v3", Labels: map[string]string{"version": "v3"}},
			},
			Rules: []model.Rule{
				{
					Match: &model.Match{
						Headers: map[string]model.StringMatch{"x-user": {Exact: "tester"}},
						Path:    &model.StringMatch{Prefix: "/reviews.Reviews/"},
					},
					Destinations: []model.Destination{{Subset: "v2", Weight: 100}},
				},
				{
					Destinations: []model.Destination{{Subset: "v1", Weight: 80}, {Subset: "v2", Weight: 20}},
					Timeout:      dur(5 * time.Second),
					Retries: &model.Retries{
						Attempts: 2, PerTryTimeout: dur(time.Second),
						RetryOn: "unavailable,cancelled,deadline-exceeded,resource-exhausted",
					},
					Fault: &model.Fault{
						Abort: &model.FaultAbort{Percent: 0.5, GRPCStatus: "UNAVAILABLE"},
						Delay: &model.FaultDelay{Percent: 10, FixedDelay: dur(time.Second)},
					},
				},
			},
		},
	}
}

func bookinfoMesh() *model.Mesh {
	mongo := &model.Service{
		Meta: meta("default", "mongodb", nil),
		Spec: model.ServiceSpec{
			Ports:    []model.ServicePort{{Name: "mongo", Port: 27017, Protocol: model.ProtocolTCP}},
			Selector: map[string]string{"app": "mongodb"},
		},
	}
	return model.NewMesh(model.Objects{
		Services: []*model.Service{
			grpcService("default", "productpage", 9080),
			grpcService("default", "details", 9080),
			grpcService("default", "reviews", 9080),
			grpcService("default", "ratings", 9080),
			mongo,
		},
		Workloads: []*model.Workload{
			workload("default", "productpage", "v1", "127.0.0.1", map[string]uint32{"grpc": 19080}),
			workload("default", "details", "v1", "127.0.0.1", map[string]uint32{"grpc": 19081}),
			workload("default", "reviews", "v1", "127.0.0.1", map[string]uint32{"grpc": 19082}),
			workload("default", "reviews", "v2", "127.0.0.1", map[string]uint32{"grpc": 19083}),
			workload("default", "reviews", "v3", "127.0.0.1", map[string]uint32{"grpc": 19084}),
			workload("default", "ratings", "v1", "127.0.0.1", map[string]uint32{"grpc": 19085}),
			workload("default", "mongodb", "v1", "127.0.0.1", map[string]uint32{"mongo": 27017}),
		},
		Routes: []*model.TrafficRoute{reviewsRoute()},
	})
}
