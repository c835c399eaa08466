package translate

import (
	"fmt"
	"sort"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
)

// validator is what protoc-gen-validate generates on every Envoy message.
type validator interface{ ValidateAll() error }

// Validate checks a resource against its proto constraints (ValidateAll) and
// then unpacks every google.protobuf.Any inside it, however deep (connection
// managers, filters, access loggers, tracers, per-route configs), and checks
// those too. Envoy's own checks on an Any happen only when it unpacks it, so
// without this a bad nested config would surface as a NACK.
func Validate(m proto.Message) error {
	if v, ok := m.(validator); ok {
		if err := v.ValidateAll(); err != nil {
			return err
		}
	}
	return validateAnys(m.ProtoReflect())
}

func validateAnys(m protoreflect.Message) error {
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := a.UnmarshalNew()
		if err != nil {
			return fmt.Errorf("unpacking %s: %w", a.GetTypeUrl(), err)
		}
		if err := Validate(inner); err != nil {
			return fmt.Errorf("%s: %w", a.GetTypeUrl(), err)
		}
		return nil
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				err = validateAnys(l.Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				if err = validateAnys(mv.Message()); err != nil {
					err = fmt.Errorf("%s[%v]: %w", fd.Name(), k.Interface(), err)
				}
				return err == nil
			})
		case fd.Message() != nil && !fd.IsMap():
			err = validateAnys(v.Message())
		}
		if err != nil && !fd.IsMap() {
			err = fmt.Errorf("%s: %w", fd.Name(), err)
		}
		return err == nil
	})
	return err
}

// Validate checks every resource of the snapshot with Validate and that
// every name a node would ask for next exists (see CheckReferences), and
// returns the first failure, named by type, sidecar and resource name. A
// snapshot that fails must not be served.
func (s *Snapshot) Validate() error {
	if err := s.ByName.validate(); err != nil {
		return err
	}
	for _, k := range sortedKeys(s.Sidecars) {
		if err := s.Sidecars[k].validate(); err != nil {
			return fmt.Errorf("sidecar %q: %w", k, err)
		}
	}
	return s.CheckReferences()
}

func (r Resources) validate() error {
	for _, typeURL := range sortedKeys(r) {
		byName := r[typeURL]
		for _, name := range sortedKeys(byName) {
			if err := Validate(byName[name]); err != nil {
				return fmt.Errorf("%s %q: %w", typeURL, name, err)
			}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
