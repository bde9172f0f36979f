//! Connections to the real RabbitMQ: the frame size they negotiate, which sizes
//! lapin's per-connection buffers.

use offndat_infrastructure::amqp::connect;
use offndat_test_support::amqp_url;
use url::Url;

async fn negotiated_frame_max(url: &Url) -> u32 {
    let connection = connect(url, "offndat-test-frame-max").await.expect("connect");
    let frame_max = connection.configuration().frame_max();
    connection.close(200, "done".into()).await.expect("close");
    frame_max
}

#[tokio::test]
async fn connections_propose_small_frames_unless_the_url_sets_them() {
    let url = Url::parse(&amqp_url()).expect("url");
    assert_eq!(negotiated_frame_max(&url).await, 32 * 1024, "the documented default");

    let mut chosen = url.clone();
    chosen.query_pairs_mut().append_pair("frame_max", "65536");
    assert_eq!(negotiated_frame_max(&chosen).await, 65_536, "the operator's frame_max wins");
}
