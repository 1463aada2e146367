from tiltguard.cli import main

raise SystemExit(main())
