package translate

import (
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tracev3 "github.com/envoyproxy/go-control-plane/envoy/config/trace/v3"
	grpcalsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/grpc/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tcpproxyv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/tcp_proxy/v3"

	"github.com/glassmesh/glassmesh/control/naming"
)

// AccessLogName is the log_name of every sidecar access log, so the receiver
// knows the entries are glassmesh's.
const AccessLogName = "glassmesh"

const (
	hcmFilterName      = "envoy.filters.network.http_connection_manager"
	tcpProxyFilterName = "envoy.filters.network.tcp_proxy"
	httpGRPCLoggerName = "envoy.access_loggers.http_grpc"
	tcpGRPCLoggerName  = "envoy.access_loggers.tcp_grpc"
	otelTracerName     = "envoy.tracers.opentelemetry"
)

// Headers and trailers the access log carries: trace context in both
// propagation formats, the request id, the proxyless peer id, and the gRPC
// status (Envoy logs no header it is not told to).
var (
	logRequestHeaders   = append(naming.LoggedRequestHeaders(), "content-type")
	logResponseHeaders  = []string{"grpc-status"}
	logResponseTrailers = []string{"grpc-status", "grpc-message"}
)

// telemetry says where a sidecar sends access logs and spans, and as whom.
// The zero value (proxyless) sends nothing.
type telemetry struct {
	cluster     string // "" for proxyless: grpc-go reads neither
	serviceName string
}

// hcmConfig describes one HttpConnectionManager.
type hcmConfig struct {
	statPrefix string
	rds        string                      // route configuration name over ADS, or
	inline     *routev3.RouteConfiguration // an inline one
	fault      bool                        // put the fault filter before the router
	rateLimit  bool                        // and the local_ratelimit filter (sidecars only)
	authz      []*hcmv3.HttpFilter         // RBAC filters, first of all
	telemetry  telemetry
}

func httpConnectionManager(c hcmConfig) *hcmv3.HttpConnectionManager {
	h := &hcmv3.HttpConnectionManager{StatPrefix: c.statPrefix, CodecType: hcmv3.HttpConnectionManager_AUTO}
	if c.inline != nil {
		h.RouteSpecifier = &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: c.inline}
	} else {
		h.RouteSpecifier = &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{ConfigSource: adsSource(), RouteConfigName: c.rds}}
	}
	h.HttpFilters = append(h.HttpFilters, c.authz...)
	if c.fault {
		h.HttpFilters = append(h.HttpFilters, &hcmv3.HttpFilter{
			Name: faultFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&faultv3.HTTPFault{})},
		})
	}
	if c.rateLimit {
		h.HttpFilters = append(h.HttpFilters, localRateLimitFilter())
	}
	// The router must be last, for Envoy and grpc-go alike.
	h.HttpFilters = append(h.HttpFilters, &hcmv3.HttpFilter{
		Name: routerFilterName, ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})},
	})
	if c.telemetry.cluster != "" {
		h.AccessLog = []*accesslogv3.AccessLog{httpAccessLog(c.telemetry.cluster)}
		h.Tracing = tracing(c.telemetry)
	}
	return h
}

// proxylessListener is what a proxyless client dialling xds:///<name> asks
// for: an API listener whose connection manager reads routes over ADS.
func proxylessListener(name, routeName string, fault bool) *listenerv3.Listener {
	hcm := httpConnectionManager(hcmConfig{statPrefix: name, rds: routeName, fault: fault})
	return &listenerv3.Listener{
		Name:        name,
		ApiListener: &listenerv3.ApiListener{ApiListener: mustAny(hcm)},
	}
}

func envoyGRPC(cluster string) *corev3.GrpcService {
	return &corev3.GrpcService{TargetSpecifier: &corev3.GrpcService_EnvoyGrpc_{EnvoyGrpc: &corev3.GrpcService_EnvoyGrpc{ClusterName: cluster}}}
}

func commonLogConfig(cluster string) *grpcalsv3.CommonGrpcAccessLogConfig {
	return &grpcalsv3.CommonGrpcAccessLogConfig{
		LogName:             AccessLogName,
		GrpcService:         envoyGRPC(cluster),
		TransportApiVersion: corev3.ApiVersion_V3,
	}
}

func httpAccessLog(cluster string) *accesslogv3.AccessLog {
	return &accesslogv3.AccessLog{
		Name: httpGRPCLoggerName,
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(&grpcalsv3.HttpGrpcAccessLogConfig{
			CommonConfig:                    commonLogConfig(cluster),
			AdditionalRequestHeadersToLog:   logRequestHeaders,
			AdditionalResponseHeadersToLog:  logResponseHeaders,
			AdditionalResponseTrailersToLog: logResponseTrailers,
		})},
	}
}

func tcpAccessLog(cluster string) *accesslogv3.AccessLog {
	return &accesslogv3.AccessLog{
		Name: tcpGRPCLoggerName,
		ConfigType: &accesslogv3.AccessLog_TypedConfig{TypedConfig: mustAny(&grpcalsv3.TcpGrpcAccessLogConfig{
			CommonConfig: commonLogConfig(cluster),
		})},
	}
}

func tracing(t telemetry) *hcmv3.HttpConnectionManager_Tracing {
	return &hcmv3.HttpConnectionManager_Tracing{Provider: &tracev3.Tracing_Http{
		Name: otelTracerName,
		ConfigType: &tracev3.Tracing_Http_TypedConfig{TypedConfig: mustAny(&tracev3.OpenTelemetryConfig{
			GrpcService: envoyGRPC(t.cluster),
			ServiceName: t.serviceName,
		})},
	}}
}

// hcmChain is a filter chain holding one HttpConnectionManager.
func hcmChain(c hcmConfig) *listenerv3.FilterChain {
	return &listenerv3.FilterChain{Filters: []*listenerv3.Filter{{
		Name:       hcmFilterName,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(httpConnectionManager(c))},
	}}}
}

// tcpChain is a filter chain proxying connections to a cluster.
func tcpChain(statPrefix, cluster, telemetryCluster string) *listenerv3.FilterChain {
	return &listenerv3.FilterChain{Filters: []*listenerv3.Filter{{
		Name: tcpProxyFilterName,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&tcpproxyv3.TcpProxy{
			StatPrefix:       statPrefix,
			ClusterSpecifier: &tcpproxyv3.TcpProxy_Cluster{Cluster: cluster},
			AccessLog:        []*accesslogv3.AccessLog{tcpAccessLog(telemetryCluster)},
		})},
	}}}
}
