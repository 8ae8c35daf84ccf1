package admission

import (
	"encoding/json"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ContainerImage is one image an object would run.
type ContainerImage struct {
	// List is the field the container is in: containers, initContainers or
	// ephemeralContainers.
	List string `json:"list"`
	// Container is the container's name.
	Container string `json:"container"`
	// Image is the image reference as written.
	Image string `json:"image"`
	// Path is the JSON pointer to the image field in the object, such as
	// /spec/template/spec/containers/0/image.
	Path string `json:"-"`
}

// Object is what the webhook needs from an admitted object.
type Object struct {
	// Annotations of the object and of its pod template, the template's
	// winning on a clash.
	Annotations map[string]string
	// Images are the images of all its containers, in spec order.
	Images []ContainerImage
}

// Supported lists the kinds whose images are checked: group/version/kind.
var Supported = []metav1.GroupVersionKind{
	{Group: "", Version: "v1", Kind: "Pod"},
	{Group: "", Version: "v1", Kind: "ReplicationController"},
	{Group: "apps", Version: "v1", Kind: "Deployment"},
	{Group: "apps", Version: "v1", Kind: "ReplicaSet"},
	{Group: "apps", Version: "v1", Kind: "StatefulSet"},
	{Group: "apps", Version: "v1", Kind: "DaemonSet"},
	{Group: "batch", Version: "v1", Kind: "Job"},
	{Group: "batch", Version: "v1", Kind: "CronJob"},
}

// ErrUnsupportedKind is returned by Decode for a kind it does not know.
var ErrUnsupportedKind = fmt.Errorf("kind not checked by signet")

// Decode reads the images and annotations of raw, an object of kind gvk.
// It returns an error wrapping ErrUnsupportedKind for other kinds.
func Decode(gvk metav1.GroupVersionKind, raw []byte) (Object, error) {
	var (
		meta metav1.ObjectMeta
		tmpl *corev1.PodTemplateSpec
		pod  *corev1.PodSpec
		base = "/spec/template/spec" // JSON pointer to the pod spec
	)
	unmarshal := func(v any) error {
		if err := json.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("decoding %s: %w", gvk.Kind, err)
		}
		return nil
	}
	switch gvk {
	case metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}:
		var o corev1.Pod
		if err := unmarshal(&o); err != nil {
			return Object{}, err
		}
		meta, pod, base = o.ObjectMeta, &o.Spec, "/spec"
	case metav1.GroupVersionKind{Version: "v1", Kind: "ReplicationController"}:
		var o corev1.ReplicationController
		if err := unmarshal(&o); err != nil {
			return Object{}, err
		}
		meta, tmpl = o.ObjectMeta, o.Spec.Template
	case metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "Deployment"}:
		var o appsv1.Deployment
		if err := unmarshal(&o); err != nil {
			return Object{}, err
		}
		meta, tmpl = o.ObjectMeta, &o.Spec.Template
	case metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "ReplicaSet"}:
		var o appsv1.ReplicaSet
		if err := unmarshal(&o); err != nil {
			return Object{}, err
		}
		meta, tmpl = o.ObjectMeta, &o.Spec.Template
	case metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "StatefulSet"}:
		var o appsv1.StatefulSet
		if err := unmarshal(&o); err != nil {
			return Object{}, err
		}
		meta, tmpl = o.ObjectMeta, &o.Spec.Template
	case metav1.GroupVersionKind{Group: "apps", Version: "v1", Kind: "DaemonSet"}:
		var o appsv1.DaemonSet
		if err := unmarshal(&o); err != nil {
			return Object{}, err
		}
		meta, tmpl = o.ObjectMeta, &o.Spec.Template
	case metav1.GroupVersionKind{Group: "batch", Version: "v1", Kind: "Job"}:
		var o batchv1.Job
		if err := unmarshal(&o); err != nil {
			return Object{}, err
		}
		meta, tmpl = o.ObjectMeta, &o.Spec.Template
	case metav1.GroupVersionKind{Group: "batch", Version: "v1", Kind: "CronJob"}:
		var o batchv1.CronJob
		if err := unmarshal(&o); err != nil {
			return Object{}, err
		}
		meta, tmpl, base = o.ObjectMeta, &o.Spec.JobTemplate.Spec.Template, "/spec/jobTemplate/spec/template/spec"
	default:
		return Object{}, fmt.Errorf("%s/%s %s: %w", gvk.Group, gvk.Version, gvk.Kind, ErrUnsupportedKind)
	}
	obj := Object{Annotations: map[string]string{}}
	for k, v := range meta.Annotations {
		obj.Annotations[k] = v
	}
	if tmpl != nil {
		for k, v := range tmpl.Annotations {
			obj.Annotations[k] = v
		}
		pod = &tmpl.Spec
	}
	if pod != nil {
		obj.Images = podImages(pod, base)
	}
	return obj, nil
}

func podImages(s *corev1.PodSpec, base string) []ContainerImage {
	var out []ContainerImage
	add := func(list string, i int, name, image string) {
		out = append(out, ContainerImage{List: list, Container: name, Image: image,
			Path: fmt.Sprintf("%s/%s/%d/image", base, list, i)})
	}
	for i, c := range s.InitContainers {
		add("initContainers", i, c.Name, c.Image)
	}
	for i, c := range s.Containers {
		add("containers", i, c.Name, c.Image)
	}
	for i, c := range s.EphemeralContainers {
		add("ephemeralContainers", i, c.Name, c.Image)
	}
	return out
}

// requestObjects decodes the new and, for an update, the old object of req.
func requestObjects(req *admissionv1.AdmissionRequest) (obj, old Object, err error) {
	obj, err = Decode(req.Kind, req.Object.Raw)
	if err != nil {
		return Object{}, Object{}, err
	}
	if req.Operation == admissionv1.Update && len(req.OldObject.Raw) > 0 {
		old, err = Decode(req.Kind, req.OldObject.Raw)
		if err != nil {
			return Object{}, Object{}, fmt.Errorf("old object: %w", err)
		}
	}
	return obj, old, nil
}
