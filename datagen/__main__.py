import sys

from datagen.gen_fake_data import main

sys.exit(main())
