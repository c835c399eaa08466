package topology

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
)

// The graph is encoded by hand: encoding/json spends most of a big
// graph's time in reflection and map-key sorting. The output is byte for
// byte what encoding/json writes for these types (the golden files and
// TestEncoderMatchesEncodingJSON hold it to that), so either may be used.

// encodedSize guesses c's JSON size (elements here encode to ~800 bytes),
// so the buffer grows at most once.
func (c *Cytoscape) encodedSize() int {
	return 1024 + 1000*(len(c.Elements.Nodes)+len(c.Elements.Edges))
}

// appendJSON appends c's JSON.
func (c *Cytoscape) appendJSON(b []byte) []byte {
	b = append(b, `{"timestamp":`...)
	b = strconv.AppendInt(b, c.Timestamp, 10)
	b = append(b, `,"duration":`...)
	b = strconv.AppendInt(b, c.Duration, 10)
	b = appendField(b, "graphType", c.GraphType)
	b = append(b, `,"elements":{"nodes":`...)
	b = appendList(b, c.Elements.Nodes, func(b []byte, n *NodeWrapper) []byte {
		if n.Data == nil {
			return append(b, `{"data":null}`...)
		}
		return append(n.Data.appendJSON(append(b, `{"data":`...)), '}')
	})
	b = append(b, `,"edges":`...)
	b = appendList(b, c.Elements.Edges, func(b []byte, e *EdgeWrapper) []byte {
		if e.Data == nil {
			return append(b, `{"data":null}`...)
		}
		return append(e.Data.appendJSON(append(b, `{"data":`...)), '}')
	})
	return append(b, "}}"...)
}

func (d *NodeData) appendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, d.ID)
	b = appendOmit(b, "parent", d.Parent)
	b = appendField(b, "nodeType", d.NodeType)
	b = appendField(b, "cluster", d.Cluster)
	b = appendField(b, "namespace", d.Namespace)
	b = appendOmit(b, "workload", d.Workload)
	b = appendOmit(b, "app", d.App)
	b = appendOmit(b, "version", d.Version)
	b = appendOmit(b, "service", d.Service)
	if len(d.DestServices) > 0 {
		b = appendList(append(b, `,"destServices":`...), d.DestServices, func(b []byte, s ServiceName) []byte {
			b = append(b, `{"cluster":`...)
			b = appendString(b, s.Cluster)
			b = appendField(b, "namespace", s.Namespace)
			return append(appendField(b, "name", s.Name), '}')
		})
	}
	if len(d.Labels) > 0 {
		b = appendStringMap(append(b, `,"labels":`...), d.Labels)
	}
	if len(d.Traffic) > 0 {
		b = appendList(append(b, `,"traffic":`...), d.Traffic, func(b []byte, t ProtocolTraffic) []byte { return t.appendJSON(b) })
	}
	b = append(b, `,"healthData":`...)
	if d.HealthData == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"requests":{"inbound":`...)
		b = appendRates(b, d.HealthData.Requests.Inbound)
		b = append(b, `,"outbound":`...)
		b = append(appendRates(b, d.HealthData.Requests.Outbound), "}}"...)
	}
	if len(d.HasHealthConfig) > 0 {
		b = appendStringMap(append(b, `,"hasHealthConfig":`...), d.HasHealthConfig)
	}
	b = appendOmit(b, "isBox", d.IsBox)
	for _, f := range [...]struct {
		name string
		on   bool
	}{{"isDead", d.IsDead}, {"isIdle", d.IsIdle}, {"isInaccessible", d.IsInaccessible}, {"isOutOfMesh", d.IsOutOfMesh},
		{"isOutside", d.IsOutside}, {"isRoot", d.IsRoot}} {
		if f.on {
			b = append(append(append(b, `,"`...), f.name...), `":true`...)
		}
	}
	if d.IsServiceEntry != nil {
		b = append(b, `,"isServiceEntry":{"hosts":`...)
		if d.IsServiceEntry.Hosts == nil {
			b = append(b, "null"...)
		} else {
			b = appendList(b, d.IsServiceEntry.Hosts, appendString)
		}
		b = append(appendField(b, "location", d.IsServiceEntry.Location), '}')
	}
	b = appendOmit(b, "healthStatus", d.HealthStatus)
	b = appendOmit(b, "dataSource", d.DataSource)
	return append(b, '}')
}

func (d *EdgeData) appendJSON(b []byte) []byte {
	b = append(b, `{"id":`...)
	b = appendString(b, d.ID)
	b = appendField(b, "source", d.Source)
	b = appendField(b, "target", d.Target)
	b = appendOmit(b, "destPrincipal", d.DestPrincipal)
	b = appendOmit(b, "isMTLS", d.IsMTLS)
	b = appendOmit(b, "responseTime", d.ResponseTime)
	b = appendOmit(b, "sourcePrincipal", d.SourcePrincipal)
	b = appendOmit(b, "throughput", d.Throughput)
	b = d.Traffic.appendJSON(append(b, `,"traffic":`...))
	b = appendOmit(b, "healthStatus", d.HealthStatus)
	b = appendOmit(b, "dataSource", d.DataSource)
	return append(b, '}')
}

func (t *ProtocolTraffic) appendJSON(b []byte) []byte {
	b = append(b, '{')
	start := len(b)
	sep := func(b []byte) []byte {
		if len(b) > start {
			return append(b, ',')
		}
		return b
	}
	if t.Protocol != "" {
		b = appendString(append(b, `"protocol":`...), t.Protocol)
	}
	if len(t.Rates) > 0 {
		b = appendStringMap(append(sep(b), `"rates":`...), t.Rates)
	}
	if len(t.Responses) > 0 {
		b = append(sep(b), `"responses":{`...)
		var buf [8]string
		for i, code := range sortedKeys(t.Responses, &buf) {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(appendString(b, code), ':')
			rd := t.Responses[code]
			if rd == nil {
				b = append(b, "null"...)
				continue
			}
			b = append(b, '{')
			if len(rd.Flags) > 0 {
				b = appendStringMap(append(b, `"flags":`...), rd.Flags)
			}
			if len(rd.Hosts) > 0 {
				if len(rd.Flags) > 0 {
					b = append(b, ',')
				}
				b = appendStringMap(append(b, `"hosts":`...), rd.Hosts)
			}
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// sortedKeys is m's keys in order, in buf when they fit (the maps of a
// graph element are small; this keeps encoding free of allocations).
func sortedKeys[V any](m map[string]V, buf *[8]string) []string {
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// appendList appends a JSON array (null for a nil slice, as encoding/json).
func appendList[T any](b []byte, xs []T, f func([]byte, T) []byte) []byte {
	if xs == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, x := range xs {
		if i > 0 {
			b = append(b, ',')
		}
		b = f(b, x)
	}
	return append(b, ']')
}

func appendField(b []byte, name, v string) []byte {
	return appendString(append(append(append(b, `,"`...), name...), `":`...), v)
}

func appendOmit(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	return appendField(b, name, v)
}

func appendStringMap(b []byte, m map[string]string) []byte {
	b = append(b, '{')
	var buf [8]string
	for i, k := range sortedKeys(m, &buf) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(append(appendString(b, k), ':'), m[k])
	}
	return append(b, '}')
}

func appendRates(b []byte, m map[string]map[string]float64) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	b = append(b, '{')
	var buf [8]string
	for i, k := range sortedKeys(m, &buf) {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(appendString(b, k), ':')
		in := m[k]
		if in == nil {
			b = append(b, "null"...)
			continue
		}
		b = append(b, '{')
		var buf2 [8]string
		for j, c := range sortedKeys(in, &buf2) {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendFloat(append(appendString(b, c), ':'), in[c])
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendFloat writes f as encoding/json does (NaN and ±Inf, which it
// rejects, become 0).
func appendFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, '0')
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendString quotes s as encoding/json does: plain printable ASCII is
// copied, anything else goes through encoding/json (HTML-safe escapes).
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
