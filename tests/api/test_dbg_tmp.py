from tests.api import test_modules_publish as t
from tests.api.test_modules_publish import dev  # noqa
def test_dbg(app, client, dev):
    stream = t.MultipartBody(60 * t.MIB)
    headers = dict(dev); headers["Transfer-Encoding"] = "chunked"
    resp = client.post(t.URL, input_stream=stream, content_type=f"multipart/form-data; boundary={stream.boundary}", headers=headers, environ_overrides={"wsgi.input_terminated": True})
    print("RESULT", resp.status_code, repr(resp.get_data(as_text=True)), stream.position/t.MIB, t.stored_files(app))
