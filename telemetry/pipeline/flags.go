package pipeline

import (
	"strings"

	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
)

// noFlags is Envoy's %RESPONSE_FLAGS% when no flag is set.
const noFlags = "-"

// responseFlagCodes lists Envoy's short codes in the order Envoy prints them
// (CORE_RESPONSE_FLAGS in source/common/stream_info/utility.h), each with the
// access-log proto field that carries it. The proto has no field for DO
// (drop overload), so it can never appear here.
var responseFlagCodes = []struct {
	code string
	set  func(*accesslogdatav3.ResponseFlags) bool
}{
	{"LH", (*accesslogdatav3.ResponseFlags).GetFailedLocalHealthcheck},
	{"UH", (*accesslogdatav3.ResponseFlags).GetNoHealthyUpstream},
	{"UT", (*accesslogdatav3.ResponseFlags).GetUpstreamRequestTimeout},
	{"LR", (*accesslogdatav3.ResponseFlags).GetLocalReset},
	{"UR", (*accesslogdatav3.ResponseFlags).GetUpstreamRemoteReset},
	{"UF", (*accesslogdatav3.ResponseFlags).GetUpstreamConnectionFailure},
	{"UC", (*accesslogdatav3.ResponseFlags).GetUpstreamConnectionTermination},
	{"UO", (*accesslogdatav3.ResponseFlags).GetUpstreamOverflow},
	{"NR", (*accesslogdatav3.ResponseFlags).GetNoRouteFound},
	{"DI", (*accesslogdatav3.ResponseFlags).GetDelayInjected},
	{"FI", (*accesslogdatav3.ResponseFlags).GetFaultInjected},
	{"RL", (*accesslogdatav3.ResponseFlags).GetRateLimited},
	{"UAEX", func(f *accesslogdatav3.ResponseFlags) bool { return f.GetUnauthorizedDetails() != nil }},
	{"RLSE", (*accesslogdatav3.ResponseFlags).GetRateLimitServiceError},
	{"DC", (*accesslogdatav3.ResponseFlags).GetDownstreamConnectionTermination},
	{"URX", (*accesslogdatav3.ResponseFlags).GetUpstreamRetryLimitExceeded},
	{"SI", (*accesslogdatav3.ResponseFlags).GetStreamIdleTimeout},
	{"IH", (*accesslogdatav3.ResponseFlags).GetInvalidEnvoyRequestHeaders},
	{"DPE", (*accesslogdatav3.ResponseFlags).GetDownstreamProtocolError},
	{"UMSDR", (*accesslogdatav3.ResponseFlags).GetUpstreamMaxStreamDurationReached},
	{"RFCF", (*accesslogdatav3.ResponseFlags).GetResponseFromCacheFilter},
	{"NFCF", (*accesslogdatav3.ResponseFlags).GetNoFilterConfigFound},
	{"DT", (*accesslogdatav3.ResponseFlags).GetDurationTimeout},
	{"UPE", (*accesslogdatav3.ResponseFlags).GetUpstreamProtocolError},
	{"NC", (*accesslogdatav3.ResponseFlags).GetNoClusterFound},
	{"OM", (*accesslogdatav3.ResponseFlags).GetOverloadManager},
	{"DF", (*accesslogdatav3.ResponseFlags).GetDnsResolutionFailure},
	{"DR", (*accesslogdatav3.ResponseFlags).GetDownstreamRemoteReset},
}

// FormatResponseFlags renders response flags as Envoy's %RESPONSE_FLAGS%
// does: short codes in Envoy's fixed order joined by ",", or "-" when none
// is set (also for nil).
func FormatResponseFlags(f *accesslogdatav3.ResponseFlags) string {
	if f == nil {
		return noFlags
	}
	// Most entries carry no flag or one; only build a string for two or more.
	first := -1
	var b strings.Builder
	for i, c := range responseFlagCodes {
		if !c.set(f) {
			continue
		}
		if first < 0 {
			first = i
			continue
		}
		if b.Len() == 0 {
			b.WriteString(responseFlagCodes[first].code)
		}
		b.WriteByte(',')
		b.WriteString(c.code)
	}
	switch {
	case first < 0:
		return noFlags
	case b.Len() == 0:
		return responseFlagCodes[first].code
	}
	return b.String()
}
