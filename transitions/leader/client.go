package leader

import (
	"context"
	"fmt"

	coordinationv1 "k8s.io/api/coordination/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/rest"
)

// LeaseClient reads and writes coordination.k8s.io/v1 Leases, and nothing else, over
// client-go's REST client (so kubeconfig and in-cluster authentication, TLS and the API
// server's error answers work as in kubectl).
type LeaseClient struct {
	rest *rest.RESTClient
}

// NewLeaseClient returns a LeaseClient for the API server of cfg.
func NewLeaseClient(cfg *rest.Config) (*LeaseClient, error) {
	scheme := runtime.NewScheme()
	if err := coordinationv1.AddToScheme(scheme); err != nil {
		return nil, fmt.Errorf("Lease client: %w", err)
	}
	c := rest.CopyConfig(cfg)
	c.APIPath = "/apis"
	c.GroupVersion = &coordinationv1.SchemeGroupVersion
	c.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	if c.UserAgent == "" {
		c.UserAgent = rest.DefaultKubernetesUserAgent()
	}
	rc, err := rest.RESTClientFor(c)
	if err != nil {
		return nil, fmt.Errorf("Lease client: %w", err)
	}
	return &LeaseClient{rest: rc}, nil
}

// Get reads a Lease; a missing one is an error apierrors.IsNotFound recognises.
func (c *LeaseClient) Get(ctx context.Context, namespace, name string) (*coordinationv1.Lease, error) {
	out := &coordinationv1.Lease{}
	err := c.rest.Get().Namespace(namespace).Resource("leases").Name(name).Do(ctx).Into(out)
	return out, err
}

// Create writes a new Lease.
func (c *LeaseClient) Create(ctx context.Context, lease *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	out := &coordinationv1.Lease{}
	err := c.rest.Post().Namespace(lease.Namespace).Resource("leases").Body(lease).Do(ctx).Into(out)
	return out, err
}

// Update replaces a Lease; it fails with a conflict (apierrors.IsConflict) when the
// Lease changed since lease.ResourceVersion was read.
func (c *LeaseClient) Update(ctx context.Context, lease *coordinationv1.Lease) (*coordinationv1.Lease, error) {
	out := &coordinationv1.Lease{}
	err := c.rest.Put().Namespace(lease.Namespace).Resource("leases").Name(lease.Name).Body(lease).Do(ctx).Into(out)
	return out, err
}
