package migrate

import (
	"bytes"
	"context"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

type fakeSaver struct {
	saved [][]string
	data  string
}

func (f *fakeSaver) ImageSave(_ context.Context, ids []string, _ ...client.ImageSaveOption) (client.ImageSaveResult, error) {
	f.saved = append(f.saved, ids)
	return io.NopCloser(strings.NewReader(f.data)), nil
}

type fakeLoader struct {
	images   map[string][]string // id → tags
	loaded   []byte
	loadResp string
	onLoad   func(f *fakeLoader)
	tagged   []string
}

func (f *fakeLoader) ImageLoad(_ context.Context, r io.Reader, _ ...client.ImageLoadOption) (client.ImageLoadResult, error) {
	b, _ := io.ReadAll(r)
	f.loaded = b
	if f.onLoad != nil {
		f.onLoad(f)
	}
	return io.NopCloser(strings.NewReader(f.loadResp)), nil
}

func (f *fakeLoader) ImageInspect(_ context.Context, id string, _ ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	tags, ok := f.images[id]
	if !ok {
		return client.ImageInspectResult{}, errdefs.ErrNotFound.WithMessage("no such image: " + id)
	}
	var r client.ImageInspectResult
	r.ID, r.RepoTags = id, slices.Clone(tags)
	return r, nil
}

func (f *fakeLoader) ImageTag(_ context.Context, o client.ImageTagOptions) (client.ImageTagResult, error) {
	f.tagged = append(f.tagged, o.Target)
	f.images[o.Source] = append(f.images[o.Source], o.Target)
	return client.ImageTagResult{}, nil
}

type countProgress struct {
	bytes int64
	began int
}

func (c *countProgress) Begin(string, string, int64, int64) Task { c.began++; return c }
func (c *countProgress) Logf(string, ...any)                     {}
func (c *countProgress) Add(b, _ int64)                          { c.bytes += b }
func (c *countProgress) Done(error)                              {}

func TestTransferImagesOneStream(t *testing.T) {
	src := &fakeSaver{data: "TARSTREAM"}
	dst := &fakeLoader{
		images:   map[string][]string{"sha256:have": {"old:1"}},
		loadResp: `{"stream":"Loaded image: a:1\n"}`,
		onLoad: func(f *fakeLoader) {
			f.images["sha256:aaa"] = []string{"a:1", "a:2"}
			f.images["sha256:bbbbbbbbbbbbbbbbbb"] = nil
		},
	}
	prog := &countProgress{}
	res, err := TransferImages(context.Background(), src, dst, []ImageRef{
		{ID: "sha256:aaa", Tags: []string{"a:1", "a:2"}},
		{ID: "sha256:have", Tags: []string{"old:1", "old:2"}},
		{ID: "sha256:bbbbbbbbbbbbbbbbbb"},
	}, prog)
	if err != nil {
		t.Fatal(err)
	}
	if len(src.saved) != 1 || !slices.Equal(src.saved[0], []string{"a:1", "a:2", "sha256:bbbbbbbbbbbbbbbbbb"}) {
		t.Errorf("saved %q, want one stream of the missing images' tags and the untagged ID", src.saved)
	}
	if !bytes.Equal(dst.loaded, []byte("TARSTREAM")) || prog.bytes != int64(len("TARSTREAM")) || prog.began != 1 {
		t.Errorf("load got %q, progress %d bytes in %d tasks", dst.loaded, prog.bytes, prog.began)
	}
	if !res[1].Skipped || res[0].Skipped {
		t.Errorf("skipped flags wrong: %+v", res)
	}
	if !slices.Contains(res[1].Tags, "old:2") {
		t.Errorf("missing tag of a skipped image not added: %+v", res[1])
	}
	if res[2].UntaggedAs != "unroot/untagged:bbbbbbbbbbbb" || !slices.Contains(dst.images["sha256:bbbbbbbbbbbbbbbbbb"], "unroot/untagged:bbbbbbbbbbbb") {
		t.Errorf("untagged image not named: %+v", res[2])
	}
}

func TestTransferImagesAllPresent(t *testing.T) {
	src := &fakeSaver{}
	dst := &fakeLoader{images: map[string][]string{"sha256:a": {"a:1"}}}
	if _, err := TransferImages(context.Background(), src, dst, []ImageRef{{ID: "sha256:a", Tags: []string{"a:1"}}}, nil); err != nil {
		t.Fatal(err)
	}
	if len(src.saved) != 0 {
		t.Errorf("saved %q although the target had everything", src.saved)
	}
}

func TestTransferImagesLoadError(t *testing.T) {
	src := &fakeSaver{data: "x"}
	dst := &fakeLoader{images: map[string][]string{}, loadResp: `{"errorDetail":{"message":"no space left on device"},"error":"no space left on device"}`}
	_, err := TransferImages(context.Background(), src, dst, []ImageRef{{ID: "sha256:a", Tags: []string{"a:1"}}}, nil)
	if err == nil || !strings.Contains(err.Error(), "no space left") {
		t.Fatalf("err = %v, want the daemon's load error", err)
	}
}

func TestTransferImagesNotArrived(t *testing.T) {
	src := &fakeSaver{data: "x"}
	dst := &fakeLoader{images: map[string][]string{}}
	if _, err := TransferImages(context.Background(), src, dst, []ImageRef{{ID: "sha256:a", Tags: []string{"a:1"}}}, nil); err == nil {
		t.Fatal("want an error when the image is not in the target after the load")
	}
}
