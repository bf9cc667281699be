package inventory

import (
	"context"

	"github.com/moby/moby/client"
)

// API is the part of the Docker Engine API that inventory reads through. Its
// methods have the signatures of github.com/moby/moby/client v0.6.3, so a
// *client.Client from [Dial] satisfies it; tests pass a fake that serves
// recorded inspect JSON.
type API interface {
	// ClientVersion is the negotiated API version, e.g. "1.41".
	ClientVersion() string
	Info(ctx context.Context, options client.InfoOptions) (client.SystemInfoResult, error)
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerInspect(ctx context.Context, containerID string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	ContainerDiff(ctx context.Context, containerID string, options client.ContainerDiffOptions) (client.ContainerDiffResult, error)
	ImageList(ctx context.Context, options client.ImageListOptions) (client.ImageListResult, error)
	ImageInspect(ctx context.Context, imageID string, inspectOpts ...client.ImageInspectOption) (client.ImageInspectResult, error)
	VolumeList(ctx context.Context, options client.VolumeListOptions) (client.VolumeListResult, error)
	VolumeInspect(ctx context.Context, volumeID string, options client.VolumeInspectOptions) (client.VolumeInspectResult, error)
	NetworkList(ctx context.Context, options client.NetworkListOptions) (client.NetworkListResult, error)
	NetworkInspect(ctx context.Context, networkID string, options client.NetworkInspectOptions) (client.NetworkInspectResult, error)
}

var _ API = (*client.Client)(nil)
