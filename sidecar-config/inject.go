package sidecarconfig

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/glassmesh/glassmesh/control/naming"
)

// Annotations and labels that drive injection.
const (
	// InjectLabel on a namespace (value "enabled") turns the webhook on for it.
	InjectLabel = "glassmesh.io/inject"
	// InjectAnnotation "false" on a pod (template) leaves it alone.
	InjectAnnotation = "glassmesh.io/inject"
	// ProxylessAnnotation "true" injects the grpc-go bootstrap and
	// certificate files instead of an Envoy sidecar.
	ProxylessAnnotation = "glassmesh.io/proxyless"
	// StatusAnnotation marks an injected pod, so injecting twice changes
	// nothing.
	StatusAnnotation = "glassmesh.io/status"
)

// Paths and names inside an injected pod.
const (
	InjectedBootstrap = "/etc/glassmesh/bootstrap.json"
	InjectedCertsDir  = "/var/run/glassmesh/certs"
	// InjectedToken is the pod's projected service-account token for
	// glassmesh's audience, the credential its certificate sidecar presents.
	InjectedToken  = "/var/run/glassmesh/token/token"
	configVolume   = "glassmesh-config"
	certsVolume    = "glassmesh-certs"
	tokenVolume    = "glassmesh-token"
	bootstrapInit  = "glassmesh-bootstrap"
	certsSidecar   = "glassmesh-certs"
	captureInit    = "glassmesh-init"
	proxyContainer = "glassmesh-proxy"
	// ProxyUID runs Envoy; traffic capture lets this user's traffic out
	// unredirected (Istio's 1337).
	ProxyUID = 1337
)

// InjectConfig is what injected containers need to know about the mesh.
type InjectConfig struct {
	// Image is glassmesh's image: it writes the bootstrap and renews the
	// certificates.
	Image string
	// EnvoyImage runs the sidecar proxy; ProxyInitImage sets the iptables
	// rules that send the pod's traffic through it (it needs iptables).
	EnvoyImage     string
	ProxyInitImage string
	// XDSAddr is glassmesh's gRPC address as pods reach it, host:port.
	XDSAddr string
	// ServerURL is glassmesh's HTTP API as pods reach it (the CA).
	ServerURL string
	// Audience is what the pod's projected service-account token is
	// minted for (glassmesh run --attestation.audience); TokenSeconds its
	// lifetime (the kubelet renews it at 80%).
	Audience     string
	TokenSeconds int64
	// XDSTLSAddr is glassmesh's attested xDS listener (glassmesh run
	// --xds-tls-addr) as pods reach it, or "". Proxyless pods then take
	// their config there over TLS, trusting the mesh root their
	// certificate sidecar writes, proving their workload with their
	// certificate and their projected token (grpc-go's jwt_token_file
	// call credentials). Envoy pods keep XDSAddr: Envoy would read the
	// token once, at start, and be refused after it expires.
	XDSTLSAddr string
}

// DefaultInjectConfig reaches glassmesh through its Service in
// glassmesh-system.
func DefaultInjectConfig() InjectConfig {
	return InjectConfig{
		Image:          "ghcr.io/glassmesh/glassmesh:latest",
		EnvoyImage:     "envoyproxy/envoy:v1.36-latest",
		ProxyInitImage: "ghcr.io/glassmesh/proxyinit:latest",
		XDSAddr:        "glassmesh.glassmesh-system.svc:15010",
		ServerURL:      "http://glassmesh.glassmesh-system.svc:20001",
		Audience:       "glassmesh",
		TokenSeconds:   3600,
	}
}

// InjectPod adds glassmesh to a pod (or pod template) of workload in its
// namespace. It reports whether it changed anything: pods that opt out or
// are injected already are left as they are.
//
// Every pod gets an init container that writes its bootstrap (`glassmesh
// sidecar bootstrap`, with the pod's name and address from the downward
// API). Proxyless pods (annotation glassmesh.io/proxyless: "true") also get
// `glassmesh sidecar certs --watch` as a native sidecar and
// GRPC_XDS_BOOTSTRAP in every container; the others get an Envoy sidecar,
// which takes its certificates over SDS, and an init container capturing
// the pod's traffic.
func InjectPod(meta *metav1.ObjectMeta, spec *corev1.PodSpec, workload string, cfg InjectConfig) (bool, error) {
	if meta.Annotations[InjectAnnotation] == "false" || meta.Annotations[StatusAnnotation] != "" {
		return false, nil
	}
	if workload == "" {
		return false, fmt.Errorf("inject: no workload name")
	}
	proxyless := meta.Annotations[ProxylessAnnotation] == "true"
	for _, c := range spec.Containers {
		if c.Name == proxyContainer {
			return false, fmt.Errorf("inject: the pod already has a container named %s", proxyContainer)
		}
	}

	var labels []string
	for k, v := range meta.Labels {
		if !naming.IsControllerLabel(k) {
			labels = append(labels, "--label", k+"="+v)
		}
	}
	sort.Sort(pairs(labels))
	downward := []corev1.EnvVar{
		{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
		{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}},
	}
	bootstrapArgs := append([]string{"sidecar", "bootstrap", "--workload", "$(POD_NAMESPACE)/" + workload,
		"--ip", "$(POD_IP)", "--instance", "$(POD_NAME)", "--xds-addr", cfg.XDSAddr, "--out", InjectedBootstrap}, labels...)
	if proxyless {
		bootstrapArgs = append(bootstrapArgs, "--proxyless", "--certs-dir", InjectedCertsDir)
		if cfg.XDSTLSAddr != "" {
			bootstrapArgs[slices.Index(bootstrapArgs, "--xds-addr")+1] = cfg.XDSTLSAddr
			bootstrapArgs = append(bootstrapArgs, "--xds-ca", filepath.Join(InjectedCertsDir, RootCertFile), "--xds-token-file", InjectedToken)
		}
	}
	nonRoot := &corev1.SecurityContext{
		RunAsNonRoot: ptrTo(true), RunAsUser: ptrTo(int64(ProxyUID)), AllowPrivilegeEscalation: ptrTo(false),
		ReadOnlyRootFilesystem: ptrTo(true), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
	configMount := corev1.VolumeMount{Name: configVolume, MountPath: "/etc/glassmesh"}
	certsMount := corev1.VolumeMount{Name: certsVolume, MountPath: InjectedCertsDir}

	spec.Volumes = append(spec.Volumes,
		corev1.Volume{Name: configVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		corev1.Volume{Name: certsVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}})
	inits := []corev1.Container{{
		Name: bootstrapInit, Image: cfg.Image, Args: bootstrapArgs, Env: downward,
		VolumeMounts: []corev1.VolumeMount{configMount}, SecurityContext: nonRoot,
	}}
	if proxyless {
		// The certificate sidecar proves the pod's service account (and
		// the pod) with a token the kubelet mints for glassmesh only.
		audience, seconds := cfg.Audience, cfg.TokenSeconds
		if audience == "" {
			audience = DefaultInjectConfig().Audience
		}
		if seconds == 0 {
			seconds = DefaultInjectConfig().TokenSeconds
		}
		spec.Volumes = append(spec.Volumes, corev1.Volume{Name: tokenVolume, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience: audience, ExpirationSeconds: &seconds, Path: filepath.Base(InjectedToken)}}},
		}}})
		tokenMount := corev1.VolumeMount{Name: tokenVolume, MountPath: filepath.Dir(InjectedToken), ReadOnly: true}
		inits = append(inits, corev1.Container{
			Name: certsSidecar, Image: cfg.Image, RestartPolicy: ptrTo(corev1.ContainerRestartPolicyAlways),
			Args: []string{"sidecar", "certs", "--workload", "$(POD_NAMESPACE)/" + workload, "--dir", InjectedCertsDir,
				"--server", cfg.ServerURL, "--token-file", InjectedToken, "--watch", "--key-mode", "0644"},
			Env: downward, VolumeMounts: []corev1.VolumeMount{certsMount, tokenMount}, SecurityContext: nonRoot,
		})
		for i := range spec.Containers {
			c := &spec.Containers[i]
			c.Env = append(c.Env, corev1.EnvVar{Name: "GRPC_XDS_BOOTSTRAP", Value: InjectedBootstrap})
			c.VolumeMounts = append(c.VolumeMounts, readOnly(configMount), readOnly(certsMount))
			if cfg.XDSTLSAddr != "" {
				// The app's xDS client sends the token the kubelet renews.
				c.Env = append(c.Env, corev1.EnvVar{Name: "GRPC_EXPERIMENTAL_XDS_BOOTSTRAP_CALL_CREDS", Value: "true"})
				c.VolumeMounts = append(c.VolumeMounts, tokenMount)
			}
		}
	} else {
		inits = append([]corev1.Container{{
			Name: captureInit, Image: cfg.ProxyInitImage,
			Command: []string{"sh", "-c", captureScript},
			SecurityContext: &corev1.SecurityContext{
				RunAsUser: ptrTo(int64(0)), RunAsNonRoot: ptrTo(false),
				Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"}, Drop: []corev1.Capability{"ALL"}},
			},
		}}, inits...)
		spec.Containers = append(spec.Containers, corev1.Container{
			Name: proxyContainer, Image: cfg.EnvoyImage,
			Args:         []string{"-c", InjectedBootstrap, "--log-level", "warn"},
			VolumeMounts: []corev1.VolumeMount{readOnly(configMount)}, SecurityContext: nonRoot,
			Ports: []corev1.ContainerPort{{Name: "http-envoy-prom", ContainerPort: 15090}},
		})
	}
	spec.InitContainers = append(inits, spec.InitContainers...)
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	meta.Annotations[StatusAnnotation] = map[bool]string{true: "proxyless", false: "envoy"}[proxyless]
	return true, nil
}

// captureScript sends the pod's TCP traffic through Envoy, Istio's way:
// inbound to 15006, outbound to 15001, except Envoy's own (uid 1337) and
// loopback.
const captureScript = `set -e
iptables -t nat -N GLASSMESH_INBOUND
iptables -t nat -A GLASSMESH_INBOUND -p tcp --dport 15000 -j RETURN
iptables -t nat -A GLASSMESH_INBOUND -p tcp --dport 15090 -j RETURN
iptables -t nat -A GLASSMESH_INBOUND -p tcp -j REDIRECT --to-ports 15006
iptables -t nat -A PREROUTING -p tcp -j GLASSMESH_INBOUND
iptables -t nat -N GLASSMESH_OUTPUT
iptables -t nat -A GLASSMESH_OUTPUT -m owner --uid-owner 1337 -j RETURN
iptables -t nat -A GLASSMESH_OUTPUT -d 127.0.0.1/32 -j RETURN
iptables -t nat -A GLASSMESH_OUTPUT -p tcp -j REDIRECT --to-ports 15001
iptables -t nat -A OUTPUT -p tcp -j GLASSMESH_OUTPUT
`

func readOnly(m corev1.VolumeMount) corev1.VolumeMount {
	m.ReadOnly = true
	return m
}

func ptrTo[T any](v T) *T { return &v }

// pairs sorts "--label", "k=v" argument pairs by their values.
type pairs []string

func (p pairs) Len() int           { return len(p) / 2 }
func (p pairs) Less(i, j int) bool { return p[2*i+1] < p[2*j+1] }
func (p pairs) Swap(i, j int) {
	p[2*i], p[2*j] = p[2*j], p[2*i]
	p[2*i+1], p[2*j+1] = p[2*j+1], p[2*i+1]
}

// WorkloadOf names the workload of a pod as the Kubernetes source does:
// its controller (a ReplicaSet less its pod-template-hash, i.e. the
// Deployment), else the pod's name, or its generateName less the dash.
func WorkloadOf(meta *metav1.ObjectMeta) string {
	kind, name := "", ""
	if c := metav1.GetControllerOfNoCopy(meta); c != nil {
		kind, name = c.Kind, c.Name
	}
	return naming.PodWorkload(meta.Name, meta.GenerateName, meta.Labels, kind, name)
}
