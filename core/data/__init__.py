"""Dataset records and formats shared by training, filtering and augmentation."""
