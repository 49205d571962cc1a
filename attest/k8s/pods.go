package k8s

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// podList is what the attestor reads of the kubelet's answer to GET /pods:
// a v1 PodList, of which only these fields are decoded. They are fields of
// the stable core/v1 API; reading them into a small struct keeps the
// Kubernetes API packages out of the agent.
type podList struct {
	Items []pod `json:"items"`
}

type pod struct {
	Metadata struct {
		Name            string            `json:"name"`
		Namespace       string            `json:"namespace"`
		UID             string            `json:"uid"`
		Labels          map[string]string `json:"labels"`
		OwnerReferences []struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
			UID  string `json:"uid"`
		} `json:"ownerReferences"`
	} `json:"metadata"`
	Spec struct {
		ServiceAccountName string `json:"serviceAccountName"`
		NodeName           string `json:"nodeName"`
	} `json:"spec"`
	Status struct {
		ContainerStatuses     []containerStatus `json:"containerStatuses"`
		InitContainerStatuses []containerStatus `json:"initContainerStatuses"`
	} `json:"status"`
}

type containerStatus struct {
	Name        string `json:"name"`
	Image       string `json:"image"`
	ImageID     string `json:"imageID"`
	ContainerID string `json:"containerID"` // "<runtime>://<id>", empty until the container was created
}

// ref is where a container is in a pod list: the pod's index, and the
// container's status in it.
type ref struct {
	pod    int
	status *containerStatus
	dup    bool // more than one pod lists the container
}

// pods is a decoded pod list with its containers indexed by ID.
type pods struct {
	items      []pod
	containers map[string]ref
}

// parsePods decodes the kubelet's pod list and indexes its containers by
// ID. Containers (and init containers) without an ID yet are not indexed;
// ephemeral containers never are (see [Attestor]).
func parsePods(data []byte) (*pods, error) {
	var list podList
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("decoding the kubelet's pod list: %w", err)
	}
	p := &pods{items: list.Items, containers: map[string]ref{}}
	for i := range p.items {
		st := &p.items[i].Status
		for _, statuses := range [][]containerStatus{st.ContainerStatuses, st.InitContainerStatuses} {
			for j := range statuses {
				_, id, ok := strings.Cut(statuses[j].ContainerID, "://")
				if !ok || id == "" {
					continue
				}
				if r, seen := p.containers[id]; seen {
					if r.pod != i {
						r.dup = true
						p.containers[id] = r
					}
					continue
				}
				p.containers[id] = ref{pod: i, status: &statuses[j]}
			}
		}
	}
	return p, nil
}

// A field is one property of a pod or container: a selector's kind and
// value. An empty value is left out (an image ID the runtime has not
// reported yet).
type field struct{ kind, value string }

// podFields are the properties of pod p that become selectors, as SPIRE's
// k8s attestor gives them.
func podFields(p *pod) []field {
	f := []field{
		{"sa", p.Spec.ServiceAccountName},
		{"ns", p.Metadata.Namespace},
		{"node-name", p.Spec.NodeName},
		{"pod-uid", p.Metadata.UID},
		{"pod-name", p.Metadata.Name},
		{"pod-image-count", strconv.Itoa(len(p.Status.ContainerStatuses))},
		{"pod-init-image-count", strconv.Itoa(len(p.Status.InitContainerStatuses))},
	}
	for _, c := range p.Status.ContainerStatuses {
		f = append(f, field{"pod-image", c.Image}, field{"pod-image", c.ImageID})
	}
	for _, c := range p.Status.InitContainerStatuses {
		f = append(f, field{"pod-init-image", c.Image}, field{"pod-init-image", c.ImageID})
	}
	for k, v := range p.Metadata.Labels {
		f = append(f, field{"pod-label", k + ":" + v})
	}
	for _, o := range p.Metadata.OwnerReferences {
		f = append(f, field{"pod-owner", o.Kind + ":" + o.Name}, field{"pod-owner-uid", o.Kind + ":" + o.UID})
	}
	return f
}

// containerFields are the properties of the container of status c that
// become selectors.
func containerFields(c *containerStatus) []field {
	return []field{{"container-name", c.Name}, {"container-image", c.Image}, {"container-image", c.ImageID}}
}
