package sidecarconfig

import (
	"bufio"
	"bytes"
	"fmt"
	"io"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// InjectManifests injects every pod template of a YAML stream and writes
// the documents back, "---" between them.
func InjectManifests(in io.Reader, cfg InjectConfig) ([]byte, error) {
	dec := utilyaml.NewYAMLReader(bufio.NewReader(in))
	var out bytes.Buffer
	for i := 0; ; i++ {
		doc, err := dec.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, gvk, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			// Not a built-in kind (a custom resource): unchanged.
			writeDoc(&out, doc)
			continue
		}
		changed, err := injectObject(obj, cfg)
		if err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i+1, gvk.Kind, err)
		}
		if !changed {
			writeDoc(&out, doc)
			continue
		}
		obj.GetObjectKind().SetGroupVersionKind(*gvk)
		b, err := yaml.Marshal(obj)
		if err != nil {
			return nil, err
		}
		writeDoc(&out, b)
	}
	return out.Bytes(), nil
}

// injectObject injects the pod (template) of the kinds that have one.
func injectObject(obj runtime.Object, cfg InjectConfig) (bool, error) {
	// A controller's pods are the workload named after it.
	tmpl := func(owner *metav1.ObjectMeta, t *corev1.PodTemplateSpec) (bool, error) {
		return InjectPod(&t.ObjectMeta, &t.Spec, owner.Name, cfg)
	}
	switch o := obj.(type) {
	case *corev1.Pod:
		return InjectPod(&o.ObjectMeta, &o.Spec, WorkloadOf(&o.ObjectMeta), cfg)
	case *appsv1.Deployment:
		return tmpl(&o.ObjectMeta, &o.Spec.Template)
	case *appsv1.StatefulSet:
		return tmpl(&o.ObjectMeta, &o.Spec.Template)
	case *appsv1.DaemonSet:
		return tmpl(&o.ObjectMeta, &o.Spec.Template)
	case *appsv1.ReplicaSet:
		return tmpl(&o.ObjectMeta, &o.Spec.Template)
	case *batchv1.Job:
		return tmpl(&o.ObjectMeta, &o.Spec.Template)
	case *batchv1.CronJob:
		return tmpl(&o.ObjectMeta, &o.Spec.JobTemplate.Spec.Template)
	}
	return false, nil
}

func writeDoc(out *bytes.Buffer, doc []byte) {
	if out.Len() > 0 {
		out.WriteString("---\n")
	}
	out.Write(bytes.TrimLeft(doc, "\n"))
	if !bytes.HasSuffix(doc, []byte("\n")) {
		out.WriteByte('\n')
	}
}
