from pynetdrv.cli import main

raise SystemExit(main())
