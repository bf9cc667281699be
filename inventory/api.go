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
	// Info is GET /info: the daemon's name, version, root dir, cgroups.
	Info(ctx context.Context, options client.InfoOptions) (client.SystemInfoResult, error)
	// ContainerList is GET /containers/json (docker ps).
	ContainerList(ctx context.Context, options client.ContainerListOptions) (client.ContainerListResult, error)
	// ContainerInspect is GET /containers/{id}/json; its Raw field keeps
	// the JSON as the daemon sent it.
	ContainerInspect(ctx context.Context, containerID string, options client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	// ContainerDiff is GET /containers/{id}/changes (docker diff).
	ContainerDiff(ctx context.Context, containerID string, options client.ContainerDiffOptions) (client.ContainerDiffResult, error)
	// ImageList is GET /images/json (docker image ls).
	ImageList(ctx context.Context, options client.ImageListOptions) (client.ImageListResult, error)
	// ImageInspect is GET /images/{id}/json.
	ImageInspect(ctx context.Context, imageID string, inspectOpts ...client.ImageInspectOption) (client.ImageInspectResult, error)
	// VolumeList is GET /volumes (docker volume ls).
	VolumeList(ctx context.Context, options client.VolumeListOptions) (client.VolumeListResult, error)
	// VolumeInspect is GET /volumes/{name}.
	VolumeInspect(ctx context.Context, volumeID string, options client.VolumeInspectOptions) (client.VolumeInspectResult, error)
	// NetworkList is GET /networks (docker network ls).
	NetworkList(ctx context.Context, options client.NetworkListOptions) (client.NetworkListResult, error)
	// NetworkInspect is GET /networks/{id}; its Raw field keeps the JSON as
	// the daemon sent it.
	NetworkInspect(ctx context.Context, networkID string, options client.NetworkInspectOptions) (client.NetworkInspectResult, error)
}

var _ API = (*client.Client)(nil)
