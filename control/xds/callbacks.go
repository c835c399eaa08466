package xds

import (
	"context"
	"errors"
	"unique"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
)

// callbacks feeds go-control-plane's stream events to the tracker. They run
// on the stream's goroutine, so they only take short locks.
type callbacks struct {
	t *tracker
}

var _ serverv3.Callbacks = callbacks{}

// OnStreamOpen implements sotw.Callbacks.
func (c callbacks) OnStreamOpen(_ context.Context, id int64, typeURL string) error {
	c.t.open(streamKey{id: id}, typeURL)
	return nil
}

// OnStreamClosed implements sotw.Callbacks.
func (c callbacks) OnStreamClosed(id int64, _ *core.Node) {
	c.t.closed(streamKey{id: id})
}

// OnStreamRequest implements sotw.Callbacks.
func (c callbacks) OnStreamRequest(id int64, req *discovery.DiscoveryRequest) error {
	c.t.request(streamKey{id: id}, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetErrorDetail())
	intern(req.ResourceNames)
	return nil
}

// intern makes each name the one copy of its text every stream shares.
// Every request decodes its names into strings of its own, and the server
// keeps a stream's names for as long as it is subscribed (in its
// subscription and the cache's watch index): thousands of clients
// subscribed to the same hundreds of names would each hold a copy.
func intern(names []string) {
	for i, n := range names {
		names[i] = unique.Make(n).Value()
	}
}

// OnStreamResponse implements sotw.Callbacks.
func (c callbacks) OnStreamResponse(_ context.Context, id int64, _ *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
	c.t.response(streamKey{id: id}, resp.GetTypeUrl(), resp.GetNonce(), resp.GetVersionInfo())
}

// OnDeltaStreamOpen implements delta.Callbacks.
func (c callbacks) OnDeltaStreamOpen(_ context.Context, id int64, typeURL string) error {
	c.t.open(streamKey{delta: true, id: id}, typeURL)
	return nil
}

// OnDeltaStreamClosed implements delta.Callbacks.
func (c callbacks) OnDeltaStreamClosed(id int64, _ *core.Node) {
	c.t.closed(streamKey{delta: true, id: id})
}

// OnStreamDeltaRequest implements delta.Callbacks. The type URL may still be
// empty on a per-type stream; the server fills it in after this call.
func (c callbacks) OnStreamDeltaRequest(id int64, req *discovery.DeltaDiscoveryRequest) error {
	c.t.request(streamKey{delta: true, id: id}, req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetErrorDetail())
	intern(req.ResourceNamesSubscribe)
	return nil
}

// OnStreamDeltaResponse implements delta.Callbacks.
func (c callbacks) OnStreamDeltaResponse(id int64, _ *discovery.DeltaDiscoveryRequest, resp *discovery.DeltaDiscoveryResponse) {
	c.t.response(streamKey{delta: true, id: id}, resp.GetTypeUrl(), resp.GetNonce(), resp.GetSystemVersionInfo())
}

// OnFetchRequest implements rest.Callbacks: REST is not served.
func (c callbacks) OnFetchRequest(context.Context, *discovery.DiscoveryRequest) error {
	return errors.New("xds: fetch (REST) is not supported, use a stream")
}

// OnFetchResponse implements rest.Callbacks.
func (c callbacks) OnFetchResponse(*discovery.DiscoveryRequest, *discovery.DiscoveryResponse) {}
