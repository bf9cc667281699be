package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"

	"github.com/unroot/unroot/inventory"
)

// UntaggedRepo is the repository under which an image that has no tag in the
// source is tagged in the target ("unroot/untagged:<short id>"): docker load
// keeps the ID of an untagged image but gives it no name, and a nameless
// image is easy to prune by accident.
const UntaggedRepo = "unroot/untagged"

// ImageSaver is the part of the source daemon's API that image transfer uses.
type ImageSaver interface {
	ImageSave(ctx context.Context, imageIDs []string, saveOpts ...client.ImageSaveOption) (client.ImageSaveResult, error)
}

// ImageLoader is the part of the target daemon's API that image transfer uses.
type ImageLoader interface {
	ImageLoad(ctx context.Context, input io.Reader, loadOpts ...client.ImageLoadOption) (client.ImageLoadResult, error)
	ImageInspect(ctx context.Context, imageID string, inspectOpts ...client.ImageInspectOption) (client.ImageInspectResult, error)
	ImageTag(ctx context.Context, options client.ImageTagOptions) (client.ImageTagResult, error)
}

// ImageRef is one image to carry from the source to the target.
type ImageRef struct {
	ID   string   // "sha256:…"
	Tags []string // every repo:tag the source has for it; empty when untagged
	Size int64    // bytes, for progress only
}

// ImageResult says what [TransferImages] did with one image.
type ImageResult struct {
	ID string `json:"id"`
	// Tags are the names the image has in the target after the transfer.
	Tags []string `json:"tags,omitempty"`
	// Skipped is true when the target already had an image with this ID;
	// only missing tags were added.
	Skipped bool `json:"skipped,omitempty"`
	// UntaggedAs is the name given to an image that had no tag.
	UntaggedAs string `json:"untagged_as,omitempty"`
}

// UntaggedName returns the name an untagged image gets in the target.
func UntaggedName(id string) string {
	return UntaggedRepo + ":" + shortImageID(id)
}

func shortImageID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// ImageTransferError says an image did not arrive intact.
type ImageTransferError struct {
	ID  string
	Err error
}

func (e *ImageTransferError) Error() string {
	return fmt.Sprintf("transfer image %s: %v", shortImageID(e.ID), e.Err)
}

func (e *ImageTransferError) Unwrap() error { return e.Err }

// Hint names the manual equivalent, which shows the daemons' own errors.
func (e *ImageTransferError) Hint() string {
	return "check free space under the target user's ~/.local/share/docker; the manual equivalent is 'docker save IMAGE | docker -H unix:///run/user/UID/docker.sock load'"
}

// TransferImages streams the images missing from dst out of src in one
// `docker save` stream and straight into one `docker load` (no temporary
// file; layers shared between images travel once). Images whose ID dst
// already has are skipped, but their missing tags are added. After the load
// every image's ID is inspected in dst and every tag checked; an untagged
// image is tagged [UntaggedName]. Results are in the order of images.
func TransferImages(ctx context.Context, src ImageSaver, dst ImageLoader, images []ImageRef, prog Progress) ([]ImageResult, error) {
	if prog == nil {
		prog = NoProgress{}
	}
	results := make([]ImageResult, len(images))
	var (
		names []string
		total int64
		load  []int // indexes of images to load
	)
	for i, im := range images {
		results[i].ID = im.ID
		have, err := hasImage(ctx, dst, im.ID)
		if err != nil {
			return nil, &ImageTransferError{ID: im.ID, Err: err}
		}
		if have {
			results[i].Skipped = true
			continue
		}
		load = append(load, i)
		total += im.Size
		if len(im.Tags) == 0 {
			names = append(names, im.ID)
		} else {
			for _, t := range im.Tags {
				if !slices.Contains(names, t) {
					names = append(names, t)
				}
			}
		}
	}
	if len(load) > 0 {
		label := shortImageID(images[load[0]].ID)
		if len(images[load[0]].Tags) > 0 {
			label = images[load[0]].Tags[0]
		}
		if len(load) > 1 {
			label += fmt.Sprintf(" and %d more", len(load)-1)
		}
		task := prog.Begin("image", label, total, 0)
		err := saveLoad(ctx, src, dst, names, task)
		task.Done(err)
		if err != nil {
			return nil, &ImageTransferError{ID: images[load[0]].ID, Err: err}
		}
	}
	for i, im := range images {
		tags, err := verifyImage(ctx, dst, im)
		if err != nil {
			return nil, &ImageTransferError{ID: im.ID, Err: err}
		}
		results[i].Tags = tags
		if len(im.Tags) == 0 {
			results[i].UntaggedAs = UntaggedName(im.ID)
		}
	}
	return results, nil
}

// saveLoad wires the save stream of src into the load request of dst.
func saveLoad(ctx context.Context, src ImageSaver, dst ImageLoader, names []string, task Task) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rc, err := src.ImageSave(ctx, names)
	if err != nil {
		return fmt.Errorf("save from source: %w", err)
	}
	defer rc.Close()
	resp, err := dst.ImageLoad(ctx, &countingReader{r: rc, task: task}, client.ImageLoadWithQuiet(true))
	if err != nil {
		return fmt.Errorf("load into target: %w", err)
	}
	defer resp.Close()
	return readLoadResponse(resp)
}

// readLoadResponse drains the load's JSON message stream and returns the
// first error it reports: the daemon answers 200 and puts errors in the body.
func readLoadResponse(r io.Reader) error {
	dec := json.NewDecoder(r)
	for {
		var m jsonstream.Message
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read load response: %w", err)
		}
		if m.Error != nil {
			return fmt.Errorf("load into target: %s", m.Error.Message)
		}
	}
}

// verifyImage checks that dst has im under its ID and every tag, adding the
// tags that are missing (also the untagged name), and returns dst's tags.
func verifyImage(ctx context.Context, dst ImageLoader, im ImageRef) ([]string, error) {
	res, err := dst.ImageInspect(ctx, im.ID)
	if err != nil {
		return nil, fmt.Errorf("not in the target after load: %w", err)
	}
	if res.ID != im.ID {
		return nil, fmt.Errorf("target has ID %s, want %s", res.ID, im.ID)
	}
	want := im.Tags
	if len(want) == 0 {
		want = []string{UntaggedName(im.ID)}
	}
	tags := slices.Clone(res.RepoTags)
	for _, t := range want {
		if slices.Contains(tags, t) {
			continue
		}
		if _, err := dst.ImageTag(ctx, client.ImageTagOptions{Source: im.ID, Target: t}); err != nil {
			return nil, fmt.Errorf("tag %s: %w", t, err)
		}
		tags = append(tags, t)
	}
	slices.Sort(tags)
	return tags, nil
}

// hasImage reports whether d has an image with ID id.
func hasImage(ctx context.Context, d ImageLoader, id string) (bool, error) {
	res, err := d.ImageInspect(ctx, id)
	if inventory.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return res.ID == id, nil
}
