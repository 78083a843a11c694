from twin3d.cli import main

raise SystemExit(main())
