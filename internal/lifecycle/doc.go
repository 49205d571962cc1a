// Package lifecycle orders the Run and Close of the module's long-lived
// types, and runs the parts of a Run side by side. A [Guard] admits a Run
// until Close, refuses a second one, hands the Run a context that Close
// cancels, and makes Close wait for it; [RunAll] runs parts until one
// fails, which stops the others, and joins their failures.
//
//	type Server struct{ life *lifecycle.Guard }
//
//	func New() *Server {
//		return &Server{life: lifecycle.NewGuard(lifecycle.Once,
//			errors.New("example: closed"), errors.New("example: Run called twice"))}
//	}
//
//	// Run serves until ctx is done or Close is called.
//	func (s *Server) Run(ctx context.Context) error {
//		ctx, done, err := s.life.Begin(ctx)
//		if err != nil {
//			return err
//		}
//		defer done()
//		return lifecycle.RunAll(ctx, s.serve, s.follow)
//	}
//
//	// Close makes Run return and waits for it.
//	func (s *Server) Close() error { s.life.Close(); return nil }
package lifecycle
