import twin3d


def test_all_is_sorted_and_resolves() -> None:
    assert list(twin3d.__all__) == sorted(twin3d.__all__)
    for name in twin3d.__all__:
        assert getattr(twin3d, name) is not None, name


def test_public_names_are_exported() -> None:
    public = {n for n in dir(twin3d) if not n.startswith("_")} - {"annotations", "errors", "model",
                                                                  "cli", "Any"}
    public -= {n for n in public if isinstance(getattr(twin3d, n), type(twin3d))}  # submodules
    assert public <= set(twin3d.__all__)
