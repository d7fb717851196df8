"""images: docker's --filter and --format."""



def test_images_filter_and_format(nsbox):
    import json
    nsbox.ok("run", "--rm", "--network", "none", "busybox", "true")  # makes the default image
    nsbox.ok("tag", "busybox", "myrepo/x:1")
    try:
        assert nsbox.ok("images", "-f", "reference=myrepo/*", "--format", "{{.Repository}}:{{.Tag}}").split() == ["myrepo/x:1"]
        rows = [json.loads(line) for line in nsbox.ok("images", "--format", "json").splitlines()]
        assert {"ID", "Repository", "Tag", "Size", "CreatedSince"} <= set(rows[0])
        assert nsbox.ok("images", "--format", "table {{.ID}}\t{{.Tag}}").splitlines()[0] == "IMAGE ID\tTAG"
        assert nsbox.ok("images", "-q", "-f", "dangling=true") == ""
        r = nsbox("images", "-f", "bogus=1")
        assert r.returncode == 125 and "invalid filter" in r.stderr
    finally:
        nsbox("rmi", "myrepo/x:1")
