package sidecarconfig_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	sidecarconfig "github.com/glassmesh/glassmesh/sidecar-config"
)

func names(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

func TestInjectEnvoy(t *testing.T) {
	meta := metav1.ObjectMeta{Name: "reviews-v1-abc", Labels: map[string]string{"app": "reviews", "version": "v1", "pod-template-hash": "abc"}}
	spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example/reviews"}}}
	changed, err := sidecarconfig.InjectPod(&meta, &spec, "reviews-v1", sidecarconfig.DefaultInjectConfig())
	if err != nil || !changed {
		t.Fatalf("changed %v, %v", changed, err)
	}
	if got := names(spec.InitContainers); !slices.Equal(got, []string{"glassmesh-init", "glassmesh-bootstrap"}) {
		t.Errorf("init containers %v: traffic capture, then the bootstrap", got)
	}
	if got := names(spec.Containers); !slices.Equal(got, []string{"app", "glassmesh-proxy"}) {
		t.Errorf("containers %v", got)
	}
	args := strings.Join(spec.InitContainers[1].Args, " ")
	for _, want := range []string{"--workload $(POD_NAMESPACE)/reviews-v1", "--ip $(POD_IP)", "--instance $(POD_NAME)", "--label app=reviews --label version=v1", "--out " + sidecarconfig.InjectedBootstrap} {
		if !strings.Contains(args, want) {
			t.Errorf("bootstrap args %q lack %q", args, want)
		}
	}
	if strings.Contains(args, "pod-template-hash") || strings.Contains(args, "--proxyless") {
		t.Errorf("bootstrap args %q: no controller labels, no --proxyless for Envoy", args)
	}
	if u := spec.Containers[1].SecurityContext.RunAsUser; u == nil || *u != sidecarconfig.ProxyUID {
		t.Errorf("Envoy runs as %v, want %d (capture lets that user out)", u, sidecarconfig.ProxyUID)
	}
	if meta.Annotations[sidecarconfig.StatusAnnotation] != "envoy" {
		t.Errorf("annotations %v", meta.Annotations)
	}
	// Twice changes nothing.
	before := spec.DeepCopy()
	if changed, _ := sidecarconfig.InjectPod(&meta, &spec, "reviews-v1", sidecarconfig.DefaultInjectConfig()); changed || len(spec.Containers) != len(before.Containers) {
		t.Errorf("a second injection changed the pod")
	}
}

func TestInjectProxyless(t *testing.T) {
	meta := metav1.ObjectMeta{Annotations: map[string]string{sidecarconfig.ProxylessAnnotation: "true"}}
	spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}, {Name: "helper"}}}
	if _, err := sidecarconfig.InjectPod(&meta, &spec, "ratings-v1", sidecarconfig.DefaultInjectConfig()); err != nil {
		t.Fatal(err)
	}
	if got := names(spec.Containers); !slices.Equal(got, []string{"app", "helper"}) {
		t.Errorf("containers %v: no proxy for proxyless pods", got)
	}
	certs := spec.InitContainers[1]
	if certs.Name != "glassmesh-certs" || certs.RestartPolicy == nil || *certs.RestartPolicy != corev1.ContainerRestartPolicyAlways {
		t.Errorf("certificate container %+v: want a native sidecar (restartPolicy Always)", certs)
	}
	if a := strings.Join(certs.Args, " "); !strings.Contains(a, "sidecar certs --workload $(POD_NAMESPACE)/ratings-v1") || !strings.Contains(a, "--watch") {
		t.Errorf("certificate args %q", a)
	}
	for _, c := range spec.Containers {
		if !slices.ContainsFunc(c.Env, func(e corev1.EnvVar) bool {
			return e.Name == "GRPC_XDS_BOOTSTRAP" && e.Value == sidecarconfig.InjectedBootstrap
		}) || len(c.VolumeMounts) != 2 {
			t.Errorf("container %s: env %v mounts %v", c.Name, c.Env, c.VolumeMounts)
		}
	}
	if !strings.Contains(strings.Join(spec.InitContainers[0].Args, " "), "--proxyless --certs-dir "+sidecarconfig.InjectedCertsDir) {
		t.Errorf("bootstrap args %v", spec.InitContainers[0].Args)
	}
}

// With an attested xDS listener, a proxyless app takes its config there
// over TLS with its projected token; an Envoy pod keeps the plain one.
func TestInjectAttestedXDS(t *testing.T) {
	cfg := sidecarconfig.DefaultInjectConfig()
	cfg.XDSTLSAddr = "glassmesh.glassmesh-system.svc:15012"
	meta := metav1.ObjectMeta{Annotations: map[string]string{sidecarconfig.ProxylessAnnotation: "true"}}
	spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}
	if _, err := sidecarconfig.InjectPod(&meta, &spec, "ratings-v1", cfg); err != nil {
		t.Fatal(err)
	}
	want := "--xds-addr glassmesh.glassmesh-system.svc:15012 "
	args := strings.Join(spec.InitContainers[0].Args, " ")
	if !strings.Contains(args, want) || !strings.Contains(args, "--xds-ca "+sidecarconfig.InjectedCertsDir+"/root-cert.pem --xds-token-file "+sidecarconfig.InjectedToken) {
		t.Errorf("bootstrap args %q: want the attested listener, the mesh root and the token", args)
	}
	app := spec.Containers[0]
	if !slices.ContainsFunc(app.Env, func(e corev1.EnvVar) bool {
		return e.Name == "GRPC_EXPERIMENTAL_XDS_BOOTSTRAP_CALL_CREDS" && e.Value == "true"
	}) || !slices.ContainsFunc(app.VolumeMounts, func(m corev1.VolumeMount) bool {
		return m.MountPath == filepath.Dir(sidecarconfig.InjectedToken) && m.ReadOnly
	}) {
		t.Errorf("app container: env %v mounts %v: want call credentials on and the token mounted read-only", app.Env, app.VolumeMounts)
	}

	envoy := corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}
	if _, err := sidecarconfig.InjectPod(&metav1.ObjectMeta{}, &envoy, "ratings-v1", cfg); err != nil {
		t.Fatal(err)
	}
	for _, c := range envoy.InitContainers {
		if a := strings.Join(c.Args, " "); strings.Contains(a, "15012") || strings.Contains(a, "--xds-token-file") {
			t.Errorf("Envoy pod init container %s args %q: Envoy keeps the plain xDS address", c.Name, a)
		}
	}
}

func TestInjectOptOut(t *testing.T) {
	meta := metav1.ObjectMeta{Annotations: map[string]string{sidecarconfig.InjectAnnotation: "false"}}
	spec := corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}
	if changed, err := sidecarconfig.InjectPod(&meta, &spec, "x", sidecarconfig.DefaultInjectConfig()); changed || err != nil {
		t.Errorf("changed %v %v", changed, err)
	}
}

// TestInjectManifestsGolden pins `glassmesh sidecar inject -f` output: a
// proxyless Deployment, a Service and a custom resource that pass through,
// a ReplicaSet's pod named after its Deployment, and an opted-out pod.
func TestInjectManifestsGolden(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "inject_in.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := sidecarconfig.InjectManifests(bytes.NewReader(in), sidecarconfig.DefaultInjectConfig())
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "inject_out.golden.yaml", out)
	docs := strings.Split(string(out), "\n---\n")
	if len(docs) != 5 {
		t.Fatalf("%d documents out, want 5", len(docs))
	}
	var pod corev1.Pod
	if err := yaml.Unmarshal([]byte(docs[3]), &pod); err != nil {
		t.Fatal(err)
	}
	if a := strings.Join(pod.Spec.InitContainers[1].Args, " "); !strings.Contains(a, "--workload $(POD_NAMESPACE)/ratings-v1 ") {
		t.Errorf("the ReplicaSet's pod: bootstrap args %q, want the Deployment's name ratings-v1", a)
	}
	if !strings.Contains(docs[4], "glassmesh.io/inject: \"false\"") || strings.Contains(docs[4], "glassmesh-") {
		t.Errorf("the opted-out pod was changed:\n%s", docs[4])
	}
}
